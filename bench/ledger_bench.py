"""Ledger benchmark (a script, not a timed test): prints its figures, each beside a baseline measured in the
same run on the same machine.

1. Append rate through `LedgerStore.append` (decode facts, seal per person, encode the leaf, tree nodes,
   dedupe key, one transaction per batch), SQLite and PostgreSQL; baseline: a plain executemany of the
   same leaf bytes into a bare table of the same database, same batches.
2. Inclusion-proof time at 10^6 entries: a tree is bulk-loaded (leaves and every stored subtree hash
   computed in one pass, inserted with executemany in big transactions; no sealing, so it is fast to
   build), then `inclusion_proof` for random indexes (its DB read included), and the whole `prove`
   path (leaf read + proof + verification). Median and p99.
3. Full bundle verification rate (entries/s): export the append store, JSON round trip, `verify_bundle`;
   baseline: hashing the same leaves into a root alone.

    python bench/ledger_bench.py [--entries 20000] [--batch 500] [--tree-size 1000000] [--postgres-url URL]
                                 [--json-out bench/results/ledger-<date>.json]

The PostgreSQL URL defaults to CEPBUS_TEST_POSTGRES_URL; the bench works in a fresh schema it drops.
`--json-out` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql

from cepbus.auditlog import merkle
from cepbus.auditlog.bundle import export_bundle, verify_bundle
from cepbus.auditlog.leaf import LedgerRecord
from cepbus.auditlog.note import Signer
from cepbus.contract.codec import encode
from cepbus.reference import load_reference
from cepbus_app.demo.simulator import Simulator
from services.ledger.records import NewRecord
from services.ledger.store import (
    LEAVES,
    NODES,
    SqlLedgerStore,
)

BATCH = 500  # records per append call (the ledger service appends up to a few hundred per batch)
AnyStore = SqlLedgerStore | SqlLedgerStore


def simulated_records(count: int, seed: int = 1) -> list[NewRecord]:
    """Realistic intakes (Avro-encoded as the bus carries them), one person per 3 events."""
    simulator = Simulator(load_reference(), seed=seed)
    out: list[NewRecord] = []
    for intake in simulator.intakes(count):
        out.append(
            NewRecord(str(intake.event_id), intake.avro_name, "cep.intake.registered",
                      int(intake.envelope.occurred_at.timestamp() * 1000),
                      f"p-{len(out) // 3}", encode(intake))
        )  # fmt: skip
    return out


def batches(items: Sequence[NewRecord], size: int) -> Iterator[Sequence[NewRecord]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def append_rate(store: AnyStore, records: Sequence[NewRecord], batch_size: int = BATCH) -> float:
    started = time.perf_counter()
    for batch in batches(records, batch_size):
        store.append(batch)
    return len(records) / (time.perf_counter() - started)


def raw_insert_rate(store: AnyStore, records: Sequence[NewRecord], batch_size: int = BATCH) -> float:
    """The baseline: the same bytes, same batches, into a bare table, one transaction per batch, with the
    database's plain `executemany` (not the store's own faster insert path)."""
    store._query("CREATE TABLE IF NOT EXISTS bench_raw (id TEXT PRIMARY KEY, payload BYTEA NOT NULL)")
    started = time.perf_counter()
    for batch in batches(records, batch_size):
        with store._write_transaction():
            store._db.executemany("INSERT INTO bench_raw (id, payload) VALUES (?, ?)",
                                  [(r.event_id, r.payload) for r in batch])  # fmt: skip
    return len(records) / (time.perf_counter() - started)


def bulk_load_tree(store: AnyStore, size: int, chunk: int = 100_000) -> float:
    """Leaves and every perfect-subtree hash in one pass, executemany in transactions of `chunk` leaves.
    Only for the benchmark: it skips dedupe, facts extraction and sealing (the leaves carry facts only)."""
    tree = merkle.CompactRange()
    started = time.perf_counter()
    facts = {
        "region_code": "84",
        "operator_id": "cep-r84",
        "operator_kind": "regional_cep",
        "channel": "phone",
    }
    base_ms = 1_767_225_600_000
    for start in range(0, size, chunk):
        leaves: list[tuple[object, ...]] = []
        nodes: list[tuple[object, ...]] = []
        for index in range(start, min(size, start + chunk)):
            event_id = str(uuid.UUID(int=index))
            leaf = LedgerRecord(index, event_id, "fr.cepbus.IntakeRegistered", "cep.intake.registered",
                                base_ms + index, base_ms + index, f"p-{index}", facts).encode()  # fmt: skip
            leaves.append(
                (index, event_id, "fr.cepbus.IntakeRegistered", base_ms + index, f"p-{index}", leaf)
            )
            nodes.extend((level, idx, h) for (level, idx), h in tree.append(merkle.leaf_hash(leaf)))
        with store._write_transaction():
            store._insert_many(
                f"INSERT INTO {LEAVES} (idx, event_id, event_type, occurred_at_ms, person_pseudonym, leaf) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                leaves,
            )
            store._insert_many(f"INSERT INTO {NODES} (level, idx, hash) VALUES (?, ?, ?)", nodes)
        print(f"    loaded {min(size, start + chunk):>9,} leaves", file=sys.stderr)
    assert store.root(size) == tree.root(), "bulk-loaded tree does not give the computed root"
    return time.perf_counter() - started


def timings_ms(action: Callable[[int], object], indexes: Sequence[int]) -> tuple[float, float]:
    samples = []
    for index in indexes:
        started = time.perf_counter()
        action(index)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def proof_times(store: AnyStore, size: int, probes: int) -> dict[str, tuple[float, float]]:
    root = store.root(size)
    rng = random.Random(7)
    indexes = [rng.randrange(size) for _ in range(probes)]
    for index in indexes[:50]:  # warm the page cache, as a running service has it
        store.inclusion_proof(index, size)

    def prove_and_verify(index: int) -> None:
        leaf = next(store.entries(index, index + 1)).leaf
        merkle.verify_inclusion(merkle.leaf_hash(leaf), index, size, store.inclusion_proof(index, size), root)

    return {
        "inclusion_proof": timings_ms(lambda i: store.inclusion_proof(i, size), indexes),
        "leaf + proof + verify": timings_ms(prove_and_verify, indexes),
    }


def bundle_rates(store: AnyStore) -> tuple[int, float, float]:
    signer = Signer.generate("bench.local/ledger")
    checkpoint = store.checkpoint(signer) or store.latest_checkpoint()
    assert checkpoint is not None
    document = json.loads(json.dumps(export_bundle(store, checkpoint, signer.verifier())))
    started = time.perf_counter()
    verified = verify_bundle(document, str(signer.verifier()))
    verify_s = time.perf_counter() - started
    leaves = [base64.b64decode(e["leaf_b64"]) for e in document["entries"]]
    started = time.perf_counter()
    merkle.root_of([merkle.leaf_hash(leaf) for leaf in leaves])
    hash_s = time.perf_counter() - started
    return verified.size, verified.size / verify_s, verified.size / hash_s


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    schema = f"ledger_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_search_path(base_url, schema)
    finally:
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=20_000, help="entries for the append and bundle runs")
    parser.add_argument("--batch", type=int, default=BATCH, help="records per append call (one transaction)")
    parser.add_argument("--tree-size", type=int, default=1_000_000, help="tree size for the proof timings")
    parser.add_argument("--probes", type=int, default=1000, help="random indexes proved")
    parser.add_argument("--postgres-url", default=os.environ.get("CEPBUS_TEST_POSTGRES_URL"))
    parser.add_argument("--postgres-tree", action="store_true", help="also time proofs on PostgreSQL")
    parser.add_argument("--json-out", type=Path, help="also write the figures here, as JSON")
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    print(f"ledger bench: {args.entries:,} entries in batches of {args.batch}, proofs at {args.tree_size:,} "
          f"entries, {os.cpu_count()} CPUs, load average {load_at_start:.1f}")  # fmt: skip
    summary: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_start": round(load_at_start, 2)},
        "entries": args.entries,
        "batch": args.batch,
        "append": [],
        "proofs": [],
    }
    records = simulated_records(args.entries)
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as workdir:
        backends: list[tuple[str, Callable[[], AnyStore]]] = [
            ("SQLite (WAL, synchronous=FULL)", lambda: SqlLedgerStore(Path(workdir) / "append.db"))
        ]
        pg_ctx = postgres_schema(args.postgres_url) if args.postgres_url else None
        pg_url = pg_ctx.__enter__() if pg_ctx else None
        try:
            if pg_url:
                backends.append(("PostgreSQL 15", lambda: SqlLedgerStore(pg_url)))
            print("\n1. append rate (entries/s)")
            for name, opener in backends:
                with opener() as store:
                    rate = append_rate(store, records, args.batch)
                    baseline = raw_insert_rate(store, records, args.batch)
                    print(f"   {name:32} {rate:>9,.0f}/s   baseline raw insert {baseline:>9,.0f}/s "
                          f"({rate / baseline:.0%} of it)")  # fmt: skip
                    summary["append"].append({
                        "backend": name, "entries_per_s": round(rate, 1),
                        "baseline_raw_insert_per_s": round(baseline, 1),
                        "ratio_to_baseline": round(rate / baseline, 4),
                    })  # fmt: skip
                    if name.startswith("SQLite"):
                        size, verify_rate, hash_rate = bundle_rates(store)
            print("\n3. bundle verification (run before 2, on the SQLite append store)")
            print(f"   {size:,} entries: {verify_rate:,.0f} entries/s verified "
                  f"(baseline: leaf hashing + root alone {hash_rate:,.0f} entries/s)")  # fmt: skip
            summary["bundle_verification"] = {
                "entries": size, "entries_per_s": round(verify_rate, 1),
                "baseline_leaf_hashing_per_s": round(hash_rate, 1),
            }  # fmt: skip

            print(f"\n2. inclusion proofs at {args.tree_size:,} entries ({args.probes} random indexes)")
            tree_backends: list[tuple[str, Callable[[], AnyStore]]] = [
                ("SQLite", lambda: SqlLedgerStore(Path(workdir) / "tree.db", synchronous="OFF"))
            ]
            if args.postgres_url and args.postgres_tree:
                tree_backends.append(("PostgreSQL", lambda: SqlLedgerStore(pg_tree_url)))
            with postgres_schema(args.postgres_url) if args.postgres_url else nullcontext("") as pg_tree_url:
                for name, opener in tree_backends:
                    with opener() as store:
                        load_s = bulk_load_tree(store, args.tree_size)
                        print(f"   {name}: bulk load of {args.tree_size:,} leaves + nodes: {load_s:.0f} s")
                        proofs: dict[str, Any] = {
                            "backend": name, "tree_size": args.tree_size, "probes": args.probes,
                            "bulk_load_s": round(load_s, 1),
                        }  # fmt: skip
                        for what, (p50, p99) in proof_times(store, args.tree_size, args.probes).items():
                            print(f"   {name:10} {what:24} median {p50:.3f} ms   p99 {p99:.3f} ms")
                            proofs[what] = {"median_ms": round(p50, 3), "p99_ms": round(p99, 3)}
                        summary["proofs"].append(proofs)
        finally:
            if pg_ctx:
                pg_ctx.__exit__(None, None, None)
    summary["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nfigures written to {args.json_out}")


if __name__ == "__main__":
    main()
