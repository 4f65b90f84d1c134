"""The batched append path builds exactly the tree, and the leaves, that appending one entry at a time
builds: every stored node, every root, every inclusion and consistency proof, the leaf bytes (against
fastavro's own encoding of the record), the facts, dedupe and collision outcomes. SQLite always,
PostgreSQL (its COPY insert path) when CEPBUS_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import dataclasses
import io
import itertools
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import fastavro
import pytest

from cepbus.auditlog import merkle
from cepbus.auditlog.leaf import LedgerRecord, record_schema
from cepbus.contract.codec import MARKER, DecodeError, decode_record
from cepbus.contract.statements import statement_digest
from services.ledger.facts import CLEAR_ONLY_WHEN, HEX_FACTS, NON_PERSONAL_FIELDS, SEALED_ON, SIGNER_SEALED_ON
from services.ledger.records import NewRecord
from services.ledger.store import NODES, SqlLedgerStore
from tests.support.factories import S as Status
from tests.support.factories import intake, referral, update
from tests.support.ledger import ledger_record
from tests.support.postgres import fresh_schema

Store = SqlLedgerStore
NOW_MS = 1_767_225_600_000
BATCH_SIZES = [1, 2, 3, 5, 8, 1, 31, 64, 200, 17, 120, 4, 250]  # powers of two, around them, and 200-250


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A factory of empty stores (each one its own file or PostgreSQL schema), all closed afterwards."""
    opened: list[Store] = []
    schemas: list[Any] = []
    counter = itertools.count()

    def open_one() -> Store:
        store: Store
        if request.param == "sqlite":
            store = SqlLedgerStore(tmp_path / f"ledger-{next(counter)}.db", clock=lambda: NOW_MS)
        else:
            schema = fresh_schema("ledger_batches")
            store = SqlLedgerStore(schema.__enter__(), clock=lambda: NOW_MS)
            schemas.append(schema)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()
    for schema in schemas:
        schema.__exit__(None, None, None)


def reference_facts(payload: bytes) -> dict[str, str]:
    """The facts as the ledger always extracted them (the original algorithm, kept here as the oracle)."""
    try:
        schema, record = decode_record(payload)
    except DecodeError:
        return {}
    flat = {**record, **(record.get("envelope") or {})}
    facts = {}
    for name in (NON_PERSONAL_FIELDS - SEALED_ON.get(schema.name, frozenset())) & flat.keys():
        value = flat[name]
        if name in HEX_FACTS and isinstance(value, bytes):  # a digest, in hex
            facts[name] = value.hex()
            continue
        if value is None or isinstance(value, bytes | dict):
            continue
        if isinstance(value, bool):
            facts[name] = "true" if value else "false"
        elif isinstance(value, list):
            facts[name] = ",".join(str(item) for item in value)
        elif hasattr(value, "isoformat"):
            facts[name] = str(value.isoformat())
        else:
            facts[name] = str(value)
    for name, (other, wanted) in CLEAR_ONLY_WHEN.items():  # a fact whose author depends on another
        if name in facts and flat.get(other) != wanted:
            del facts[name]
    if schema.name in SIGNER_SEALED_ON:  # its signature sealed: its statement digest kept instead
        facts["statement_digest"] = statement_digest(payload).hex()
    return facts


def fastavro_leaf(record: LedgerRecord) -> bytes:
    """The leaf bytes as fastavro writes them (what `LedgerRecord.encode` always produced)."""
    parsed, fingerprint = record_schema()
    buffer = io.BytesIO()
    buffer.write(MARKER + fingerprint)
    fastavro.schemaless_writer(buffer, parsed, record.avro_body())
    return buffer.getvalue()


def event_record(event: Any, topic: str) -> NewRecord:
    envelope = event.envelope
    occurred_ms = int(envelope.occurred_at.timestamp() * 1000)
    return ledger_record(event, topic, occurred_ms=occurred_ms, signed=True)


def mixed_records(count: int) -> list[NewRecord]:
    """Real events of several types (intakes, referrals, signed status updates), a few people each with
    several events, bytes that are no known event, events naming no person; then replays (duplicates)
    and id collisions, scattered."""
    rng = random.Random(12)
    out: list[NewRecord] = []
    for n in range(count):
        person = f"p-{n // 3}"
        kind = n % 7
        if kind in (0, 1, 2):
            out.append(event_record(intake(person=person, region=("11", "84", "53")[n % 3]), "cep.intake"))
        elif kind == 3:
            ref = referral(person=person)
            out.append(event_record(ref, "cep.referral"))
        elif kind == 4:
            out.append(event_record(update(referral(person=person), Status.ACCEPTED), "cep.referral.status"))
        elif kind == 5:
            out.append(NewRecord(f"junk-{n}", "Junk", "cep.other", 1_700_000_000_000 + n, person,
                                 b"\xc3\x01" + rng.randbytes(n % 40)))  # fmt: skip
        else:
            out.append(NewRecord(f"bare-{n}", "fr.cepbus.Unpersonal", "cep.other", 1_700_000_000_000 + n,
                                 None, b""))  # fmt: skip
    for n in range(0, count, 11):  # a redelivery of an earlier event, and a collision with another one
        replay, victim = dataclasses.replace(out[n]), out[(n * 7 + 3) % count]  # as redelivered: a copy
        out.insert(rng.randrange(n, len(out) + 1), replay)
        forged = (
            dataclasses.replace(victim, payload=victim.payload + b"forged")
            if victim.person_pseudonym
            else dataclasses.replace(victim, content_digest=f"forged-{victim.digest()}")
        )
        out.insert(rng.randrange(n, len(out) + 1), forged)
    return out


def in_batches(items: Sequence[NewRecord], sizes: Sequence[int]) -> Iterator[Sequence[NewRecord]]:
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(items):
            return
        yield items[start : start + size]
        start += size


def stored_nodes(store: Store) -> dict[merkle.NodeId, bytes]:
    return {(int(level), int(idx)): bytes(h) for level, idx, h in store._query(f"SELECT * FROM {NODES}")}


def test_batched_appends_build_what_one_entry_at_a_time_builds(open_store: Any) -> None:
    records = mixed_records(700)
    batched, one_by_one = open_store(), open_store()
    batches = list(in_batches(records, BATCH_SIZES))
    outcomes = [batched.append_checked(batch) for batch in batches]
    singles = [one_by_one.append_checked([r]) for r in records]
    total = sum(o.appended for o in outcomes)
    assert total == sum(o.appended for o in singles) == batched.size() == one_by_one.size() > 600
    for batch, outcome in zip(batches, outcomes, strict=True):  # every record appended, skipped or refused
        assert outcome.appended + outcome.duplicates + len(outcome.collisions) == len(batch)
    # (Within one batch the first occurrence of an id is the reference, so a replay that follows a forgery
    # in the same batch is a collision there and a duplicate one at a time: compare totals, not kinds.)
    assert sum(o.duplicates for o in outcomes) > 0 and sum(len(o.collisions) for o in outcomes) > 0

    # The same entries, in the same order, with the same content (only the random sealing differs).
    entries, singly = list(batched.entries()), list(one_by_one.entries())
    first: dict[str, NewRecord] = {}  # what each stored entry was appended from: its id's first record
    for r in records:
        first.setdefault(r.event_id, r)
    for entry, single in zip(entries, singly, strict=True):
        record, other = entry.record, single.record
        assert record.content() | {"sealed_key_id": None} == other.content() | {"sealed_key_id": None}
        assert (record.sealed is None, record.clear_payload) == (other.sealed is None, other.clear_payload)
        assert batched.open_payload(entry.index) == one_by_one.open_payload(entry.index)
        assert entry.leaf == fastavro_leaf(record)  # the per-batch encoder writes what encode() writes
        given = first[record.event_id]
        assert dict(record.facts) == dict(given.facts)  # the store keeps the facts it is given
        if not given.payload.endswith(b"forged"):  # the writer's facts, from the decoded event, are the
            assert dict(record.facts) == reference_facts(given.payload)  # ones read from the bytes
    assert any(e.record.facts for e in entries) and any(not e.record.facts for e in entries)
    # Each person's events are sealed under one key, in the batched store as one entry at a time.
    people = {r.event_id: r.person_pseudonym for r in records}
    keys: dict[str | None, set[str]] = {}
    for entry in entries:
        if entry.record.sealed is not None:
            keys.setdefault(people[entry.record.event_id], set()).add(entry.record.sealed.key_id)
    assert keys and all(len(ids) == 1 for ids in keys.values())

    # The tree, as appending its leaf hashes one at a time builds it: every node, root and proof.
    hashes = [merkle.leaf_hash(e.leaf) for e in entries]
    tree, expected = merkle.CompactRange(), {}
    for size, leaf_hash in enumerate(hashes, start=1):
        expected.update(tree.append(leaf_hash))
        assert batched.root(size) == tree.root() == merkle.root_of(hashes[:size])
    assert stored_nodes(batched) == expected

    def read(ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        return {node: expected[node] for node in ids}

    rng = random.Random(3)
    for size in [1, 2, 3, 64, 65, 255, 256, 257, total, *rng.sample(range(1, total + 1), 25)]:
        root = merkle.root_of(hashes[:size])
        for index in {0, size // 2, size - 1, rng.randrange(size)}:
            proof = batched.inclusion_proof(index, size)
            assert proof == merkle.inclusion_proof(index, size, read)
            merkle.verify_inclusion(hashes[index], index, size, proof, root)
        for old in {1, size // 3, size - 1, rng.randrange(1, size + 1)}:
            if old < 1:
                continue
            proof = batched.consistency_proof(old, size)
            assert proof == merkle.consistency_proof(old, size, read)
            merkle.verify_consistency(old, size, merkle.root_of(hashes[:old]), root, proof)
    result = batched.verify()
    assert result.ok, result.reason
