"""Ledger storage, run against both backends.

SQLite always runs, in tmp_path. PostgreSQL runs when CEPBUS_TEST_POSTGRES_URL is set (for instance to the
URL printed by scripts/start-postgres.sh). Each PostgreSQL test gets its own schema, created up front and
selected with `options=-csearch_path=<schema>` in the store URL, then dropped with CASCADE: the no-delete
triggers forbid DELETE/TRUNCATE of rows, not dropping the schema, so tests never need to bypass them.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cepbus.auditlog import merkle
from cepbus.auditlog.leaf import ERASURE_EVENT_TYPE, LedgerRecord
from cepbus.auditlog.note import Signer, open_checkpoint
from cepbus.contract.codec import encode
from services.ledger.records import NewRecord
from services.ledger.store import (
    APPEND_ONLY_TABLES,
    LEAVES,
    NODES,
    ErasedError,
    LedgerStore,
    SqlLedgerStore,
)
from tests.support.factories import intake
from tests.support.ledger import ledger_record
from tests.support.postgres import fresh_schema

TABLE = LEAVES

TYPES = ("IntakeRegistered", "NoticeIssued", "ChoiceRecorded", "ReferralRequested")


def record(event_id: str, n: int = 0) -> NewRecord:
    return NewRecord(
        event_id=event_id,
        event_type=TYPES[n % len(TYPES)],
        topic="cep.regulation",
        occurred_at_ms=1_700_000_000_000 + n,
        person_pseudonym=f"psn-{n % 5}",
        payload=b"\xc3\x01" + event_id.encode() + bytes(n % 17),
    )


def records(prefix: str, count: int) -> list[NewRecord]:
    return [record(f"{prefix}-{i}", i) for i in range(count)]


# -- backends --------------------------------------------------------------------------------------------


@dataclass
class Backend:
    """One database under test, plus the raw SQL access a user (or an attacker) of that database has."""

    name: str
    url: str
    error: type[Exception]
    mark: str  # the DB-API placeholder for raw statements
    forbidden: list[str]  # statements the triggers must refuse, besides UPDATE and DELETE
    _opened: list[LedgerStore] = field(default_factory=list)

    def open(self, **kwargs: Any) -> SqlLedgerStore | SqlLedgerStore:
        store: SqlLedgerStore | SqlLedgerStore
        if self.name == "sqlite":
            store = SqlLedgerStore(self.url, **kwargs)
        else:
            store = SqlLedgerStore(self.url, **kwargs)
        self._opened.append(store)
        return store

    def execute(self, statement: str, params: tuple[object, ...] = ()) -> None:
        """Run SQL through an ordinary connection, triggers in force."""
        if self.name == "sqlite":
            conn = sqlite3.connect(self.url, isolation_level=None)
            try:
                conn.execute(statement, params)
            finally:
                conn.close()
        else:
            with psycopg.connect(self.url, autocommit=True) as pg:
                pg.execute(statement, params)

    def attack(self, statement: str, params: tuple[object, ...] = ()) -> None:
        """Run SQL as a database admin would: triggers out of the way, then put back to hide the trace."""
        if self.name == "sqlite":
            conn = sqlite3.connect(self.url, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                triggers = conn.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (?, ?, ?)",
                    APPEND_ONLY_TABLES,
                ).fetchall()
                assert triggers, "expected the store's append-only triggers"
                for name, _ in triggers:
                    conn.execute(f'DROP TRIGGER "{name}"')
                conn.execute(statement, params)
                for _, ddl in triggers:
                    conn.execute(ddl)
                conn.execute("COMMIT")
            finally:
                conn.close()
        else:
            with psycopg.connect(self.url) as pg, pg.transaction():
                for table in APPEND_ONLY_TABLES:
                    pg.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                pg.execute(statement, params)
                for table in APPEND_ONLY_TABLES:
                    pg.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        b = Backend(
            name="sqlite",
            url=str(tmp_path / "nested" / "dir" / "ledger.db"),
            error=sqlite3.DatabaseError,
            mark="?",
            forbidden=[
                # REPLACE deletes the old row without firing delete triggers: a separate trigger refuses it.
                f"INSERT OR REPLACE INTO {TABLE} SELECT idx, event_id, 'Forged', occurred_at_ms, "
                f"person_pseudonym, leaf FROM {TABLE} WHERE idx = 1",
                f"INSERT OR REPLACE INTO {NODES} SELECT level, idx, zeroblob(32) FROM {NODES} WHERE idx = 1",
                f"INSERT INTO {TABLE} SELECT * FROM {TABLE} WHERE idx = 1 "
                "ON CONFLICT (idx) DO UPDATE SET event_type = 'Forged'",
            ],
        )
        yield b
        b.close_all()
        return
    with fresh_schema("ledger_test") as url:
        b = Backend(
            name="postgres",
            url=url,
            error=psycopg.Error,
            mark="%s",
            forbidden=[
                f"TRUNCATE {TABLE}",
                f"TRUNCATE {NODES}",
                f"INSERT INTO {TABLE} SELECT * FROM {TABLE} WHERE idx = 1 "
                "ON CONFLICT (idx) DO UPDATE SET event_type = 'Forged'",
            ],
        )
        try:
            yield b
        finally:
            b.close_all()


# -- behaviour -------------------------------------------------------------------------------------------


def leaf_hashes(store: LedgerStore) -> list[bytes]:
    return [merkle.leaf_hash(e.leaf) for e in store.entries()]


def test_append_count_contains_and_read_back(backend: Backend) -> None:
    store = backend.open(clock=lambda: 1_234)
    assert (store.count(), store.size(), store.root(), store.count_by_type()) == (0, 0, merkle.EMPTY_ROOT, {})
    batch = records("a", 10)
    assert store.append(batch) == 10
    assert store.count() == 10
    assert store.count_by_type() == {"ChoiceRecorded": 2, "IntakeRegistered": 3, "NoticeIssued": 3,
                                     "ReferralRequested": 2}  # fmt: skip
    assert store.contains("a-3") and not store.contains("a-10")
    assert store.index_of("a-3") == 3
    entries = list(store.entries())
    assert [e.index for e in entries] == list(range(10))
    for entry, rec in zip(entries, batch, strict=True):
        assert LedgerRecord.decode(entry.leaf) == entry.record
        assert (entry.record.event_id, entry.record.event_type) == (rec.event_id, rec.event_type)
        assert entry.record.person_pseudonym is None  # never in clear: the key id links the person's leaves
        assert entry.record.sealed is not None and entry.record.clear_payload is None
        assert entry.record.recorded_at_ms == 1_234
        assert store.open_payload(entry.index) == rec.payload
        assert rec.payload not in entry.leaf and rec.person_pseudonym.encode() not in entry.leaf  # type: ignore[union-attr]
    assert store.root() == merkle.root_of(leaf_hashes(store))
    assert store.verify().ok


def test_proofs_are_served_from_stored_nodes(backend: Backend) -> None:
    store = backend.open()
    store.append(records("a", 37))
    hashes = leaf_hashes(store)
    for size in (1, 2, 5, 16, 37):
        root = merkle.root_of(hashes[:size])
        assert store.root(size) == root
        for index in {0, size // 2, size - 1}:
            merkle.verify_inclusion(hashes[index], index, size, store.inclusion_proof(index, size), root)
    for old in (1, 7, 16, 36):
        merkle.verify_consistency(
            old, 37, merkle.root_of(hashes[:old]), store.root(), store.consistency_proof(old, 37)
        )


def test_duplicates_across_and_within_batches_add_nothing(backend: Backend) -> None:
    store = backend.open()
    assert store.append(records("a", 5)) == 5
    assert store.append(records("a", 5)) == 0
    root = store.root()
    assert store.append([]) == 0
    assert store.root() == root
    first, second = record("b-0", 1), record("b-0", 2)  # same id, different content: the first wins
    batch = [first, record("a-1", 1), second, record("b-1"), record("b-1"), record("a-4", 4)]
    assert store.append(batch) == 2
    assert store.count() == 7
    assert [e.record.event_id for e in store.entries(5)] == ["b-0", "b-1"]
    assert store.open_payload(5) == first.payload
    assert store.verify().ok


def test_failed_append_leaves_nothing_behind(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    store = backend.open()
    store.append(records("a", 3))
    root = store.root()
    original = store._insert_rows

    def fail_on_nodes(table: str, columns: Any, rows: Any) -> None:
        original(table, columns, rows)
        if table == NODES:
            raise RuntimeError("crash after the leaves and nodes, before commit")

    monkeypatch.setattr(store, "_insert_rows", fail_on_nodes)
    with pytest.raises(RuntimeError, match="crash after"):
        store.append(records("b", 4))
    monkeypatch.undo()
    assert (store.count(), store.root()) == (3, root)
    assert store.append(records("b", 4)) == 4
    result = store.verify()
    assert result.ok, result.reason


def test_tree_verifies_after_many_appends_and_reopens(backend: Backend) -> None:
    clock = iter(range(1_000, 10**9, 7))
    total = 0
    for session in range(4):
        store = backend.open(page_size=13, clock=lambda: next(clock))
        assert store.size() == total
        for batch in range(10):
            size = (session * 10 + batch) % 9  # includes empty batches
            total += store.append(records(f"s{session}-b{batch}", size))
            store.append(records(f"s{session}-b{batch}", size))  # replay: Kafka redelivery after a crash
        store.close()
    store = backend.open(page_size=13)
    result = store.verify()
    assert result.ok, result.reason
    assert result.entries_checked == total == store.count() > 100
    assert result.root == store.root() == merkle.root_of(leaf_hashes(store))
    assert [e.index for e in store.entries(total - 20)] == list(range(total - 20, total))
    assert list(store.entries(total)) == []


def test_normal_connection_cannot_update_or_delete(backend: Backend) -> None:
    store = backend.open()
    store.append(records("a", 5))
    store.checkpoint(Signer.generate("test.log"))
    root = store.root()
    statements = [
        f"UPDATE {TABLE} SET leaf = leaf WHERE idx = 1",
        f"UPDATE {TABLE} SET event_type = 'Forged'",
        f"DELETE FROM {TABLE} WHERE idx = 4",
        f"DELETE FROM {TABLE}",
        f"UPDATE {NODES} SET hash = hash",
        f"DELETE FROM {NODES} WHERE level = 0",
        "UPDATE ledger_checkpoints SET note = note",
        "DELETE FROM ledger_checkpoints",
        *backend.forbidden,
    ]
    for statement in statements:
        with pytest.raises(backend.error, match="append-only"):
            backend.execute(statement)
    assert (store.count(), store.root()) == (5, root)
    assert store.verify().ok


def _tampered(backend: Backend, statement: str, params: tuple[object, ...] = ()) -> LedgerStore:
    store = backend.open()
    store.append(records("a", 20))
    assert store.verify().ok
    backend.attack(statement, params)
    return store


def test_tampered_leaf_is_detected(backend: Backend) -> None:
    store = backend.open()
    store.append(records("a", 20))
    victim = next(store.entries(7, 8))
    forged = bytearray(victim.leaf)
    forged[-1] ^= 1
    backend.attack(f"UPDATE {TABLE} SET leaf = {backend.mark} WHERE idx = 7", (bytes(forged),))
    result = store.verify()
    assert (result.ok, result.first_bad_index) == (False, 7)
    with pytest.raises(backend.error, match="append-only"):  # the attacker put the trigger back
        backend.execute(f"UPDATE {TABLE} SET leaf = leaf")


def test_tampered_column_is_detected(backend: Backend) -> None:
    store = _tampered(backend, f"UPDATE {TABLE} SET event_type = 'Forged' WHERE idx = 3")
    result = store.verify()
    assert (result.ok, result.first_bad_index) == (False, 3)
    assert result.reason is not None and "columns" in result.reason


def test_tampered_node_is_detected(backend: Backend) -> None:
    store = _tampered(
        backend, f"UPDATE {NODES} SET hash = {backend.mark} WHERE level = 2 AND idx = 1", (bytes(32),)
    )
    result = store.verify()
    assert (result.ok, result.first_bad_index) == (False, 4)
    assert result.reason is not None and "level 2" in result.reason


def test_deleted_leaf_is_detected(backend: Backend) -> None:
    store = _tampered(backend, f"DELETE FROM {TABLE} WHERE idx = 4")
    result = store.verify()
    assert (result.ok, result.first_bad_index) == (False, 4)
    assert result.reason is not None and "missing" in result.reason


# -- checkpoints -----------------------------------------------------------------------------------------


def test_checkpoints_are_signed_consistent_and_never_repeated(backend: Backend) -> None:
    signer = Signer.generate("cep-bus.test/ledger")
    store = backend.open()
    assert store.checkpoint(signer) is None  # nothing to sign in an empty tree
    store.append(records("a", 6))
    first = store.checkpoint(signer)
    assert first is not None and first.checkpoint.size == 6
    assert open_checkpoint(first.note, signer.verifier()).root == store.root(6)
    assert store.checkpoint(signer) is None  # no growth, no new checkpoint
    store.append(records("b", 5))
    second = store.checkpoint(signer)
    assert second is not None and second.checkpoint.size == 11
    assert store.latest_checkpoint() == second and store.checkpoint_at(6) == first
    merkle.verify_consistency(
        6, 11, first.checkpoint.root, second.checkpoint.root, store.consistency_proof(6, 11)
    )
    assert store.verify(signer.verifier()).ok
    assert not store.verify(Signer.generate("cep-bus.test/ledger").verifier()).ok


def test_no_checkpoint_is_signed_over_a_rewritten_past(backend: Backend) -> None:
    signer = Signer.generate("cep-bus.test/ledger")
    store = backend.open()
    store.append(records("a", 8))
    assert store.checkpoint(signer) is not None
    # an admin rewrites leaf 2 and its level-0 node; appends go on from the rewritten tree
    forged = next(store.entries(2, 3)).leaf + b""
    other = LedgerRecord.decode(forged)
    forged = LedgerRecord(**{**other.__dict__, "facts": {"region_code": "99"}}).encode()
    backend.attack(f"UPDATE {TABLE} SET leaf = {backend.mark} WHERE idx = 2", (forged,))
    m = backend.mark
    backend.attack(f"UPDATE {NODES} SET hash = {m} WHERE level = 0 AND idx = 2", (merkle.leaf_hash(forged),))
    for level in (1, 2, 3):  # and recomputes the nodes above it, so the tree looks whole
        idx = 2 >> level
        left, right = store.read_nodes([(level - 1, 2 * idx), (level - 1, 2 * idx + 1)]).values()
        backend.attack(f"UPDATE {NODES} SET hash = {m} WHERE level = {level} AND idx = {idx}",
                       (merkle.node_hash(left, right),))  # fmt: skip
    store.append(records("b", 3))
    with pytest.raises(merkle.ProofError):
        store.checkpoint(signer)
    assert store.latest_checkpoint() is not None and store.latest_checkpoint().checkpoint.size == 8  # type: ignore[union-attr]
    result = store.verify(signer.verifier())
    assert not result.ok and result.reason is not None and "checkpoint of size 8" in result.reason


# -- erasure ---------------------------------------------------------------------------------------------


def event_record(event: Any) -> NewRecord:
    return ledger_record(event)


def test_erasure_destroys_the_key_and_keeps_every_proof(backend: Backend) -> None:
    signer = Signer.generate("cep-bus.test/ledger")
    store = backend.open()
    alice, bob = (
        intake(person="psn-alice", cadre=True),
        intake(person="psn-bob", region="84", departement="69"),
    )
    alice_again = intake(person="psn-alice")
    store.append([event_record(alice), event_record(bob), event_record(alice_again)])
    before = store.checkpoint(signer)
    assert before is not None
    assert store.open_payload(0) == encode(alice)
    leaf = next(store.entries(1, 2)).record
    assert leaf.facts["region_code"] == "84" and leaf.facts["channel"] == "in_person"
    assert "birth_year" not in leaf.facts and "reception_site" not in leaf.facts

    leaf_key_id = next(store.entries(0, 1)).record.sealed.key_id  # type: ignore[union-attr]
    erasure_index = store.erase("psn-alice")
    assert erasure_index == 3
    for index in (0, 2):
        with pytest.raises(ErasedError):
            store.open_payload(index)
    assert store.open_payload(1) == encode(bob)
    erasure = next(store.entries(3, 4)).record
    assert (erasure.event_type, erasure.person_pseudonym, erasure.sealed) == (ERASURE_EVENT_TYPE, None, None)
    assert erasure.facts["erased_key_id"] == leaf_key_id  # the erasure names the key, never the pseudonym
    assert b"psn-alice" not in next(store.entries(3, 4)).leaf
    with pytest.raises(KeyError, match="already erased"):
        store.erase("psn-alice")

    after = store.checkpoint(signer)
    assert after is not None and after.checkpoint.size == 4
    hashes = leaf_hashes(store)
    merkle.verify_inclusion(hashes[0], 0, 4, store.inclusion_proof(0, 4), after.checkpoint.root)
    merkle.verify_consistency(
        3, 4, before.checkpoint.root, after.checkpoint.root, store.consistency_proof(3, 4)
    )
    assert store.verify(signer.verifier()).ok
    # a new event about the same pseudonym gets a fresh key, readable until erased in turn
    late = intake(person="psn-alice")
    store.append([event_record(late)])
    assert store.open_payload(4) == encode(late)
    with pytest.raises(ErasedError):
        store.open_payload(0)


def _append_concurrently(url: str, worker: int, batches: int, start: Any, results: Any) -> None:
    """Child process: a second ledger consumer. Half of each batch is shared with the other worker."""
    store = SqlLedgerStore(url)
    try:
        start.wait()
        inserted = 0
        for b in range(batches):
            batch = [record(f"shared-{b}-{i}", i) for i in range(3)]
            batch += [record(f"w{worker}-{b}-{i}", i) for i in range(3)]
            inserted += store.append(batch)
            time.sleep(0.002)  # a consumer's work between batches: lets the other writer get the lock
        results.put(inserted)
    finally:
        store.close()


def test_two_processes_appending_concurrently_keep_one_tree(backend: Backend) -> None:
    backend.open().close()  # create the schema first so the race is on appends
    ctx = multiprocessing.get_context("spawn")
    batches = 60
    start, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=_append_concurrently, args=(backend.url, w, batches, start, results))
        for w in (0, 1)
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
        assert p.exitcode == 0, f"worker exit code {p.exitcode}"
    inserted = [results.get(timeout=5), results.get(timeout=5)]
    expected_ids = {f"shared-{b}-{i}" for b in range(batches) for i in range(3)}
    expected_ids |= {f"w{w}-{b}-{i}" for w in (0, 1) for b in range(batches) for i in range(3)}
    store = backend.open()
    assert sum(inserted) == len(expected_ids) == store.count()
    entries = list(store.entries())
    assert {e.record.event_id for e in entries} == expected_ids
    owners = [e.record.event_id[:2] for e in entries if e.record.event_id.startswith("w")]
    switches = sum(a != b for a, b in itertools.pairwise(owners))
    assert switches > 1, "the two writers never overlapped, so this run proved nothing about locking"
    result = store.verify()
    assert result.ok, result.reason
    assert result.entries_checked == len(expected_ids)


# -- SQLite specifics and opening by URL ------------------------------------------------------------------


def test_sqlite_file_is_in_wal_mode_with_parent_dirs_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.db"
    SqlLedgerStore(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_open_store_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url, expected in [
        ("sqlite:///rel/ledger.db", tmp_path / "rel" / "ledger.db"),
        (f"sqlite:///{tmp_path}/abs/ledger.db", tmp_path / "abs" / "ledger.db"),  # sqlite:////abs/...
        ("bare/ledger.db", tmp_path / "bare" / "ledger.db"),
    ]:
        store = SqlLedgerStore(url)
        try:
            assert isinstance(store, SqlLedgerStore)
            assert store.append([record("x")]) == 1
        finally:
            store.close()
        assert expected.is_file(), url


@pytest.mark.parametrize(
    "url", ["", "sqlite://", "sqlite:///", "sqlite:relative.db", "mysql://root:s3cret@db/ledger", "kafka://x"]
)
def test_open_store_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        SqlLedgerStore(url)
    assert "s3cret" not in str(excinfo.value)


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_postgres_urls(scheme: str) -> None:
    with fresh_schema("ledger_test") as url:
        store = SqlLedgerStore(scheme + url[url.index("://") :])
        try:
            assert isinstance(store, SqlLedgerStore)
            assert store.append([record("x")]) == 1
            assert store.verify().ok
        finally:
            store.close()


def test_a_payload_without_a_person_is_never_stored_in_clear(tmp_path: Path) -> None:
    with SqlLedgerStore(tmp_path / "ledger.db") as store:
        with pytest.raises(ValueError, match="person pseudonym"):
            store.append([NewRecord("e1", "fr.cepbus.IntakeRegistered", "t", 0, None, b"\xc3\x01boeth")])
        assert store.size() == 0


def test_what_reveals_a_disability_stays_sealed_in_the_leaves(tmp_path: Path) -> None:
    """A BOETH intake at the regional operator: its decision and notice request name Cap emploi and the
    rule R-CAPEMPLOI-BOETH. The leaves' clear facts must not (they go into auditors' bundles); the
    sealed payload keeps them, and the leaf bytes hold them nowhere in clear."""
    from cepbus.reference import load_reference
    from services.router.handlers import RouterHandlers

    boeth = intake(person="psn-carol", boeth=True)
    derived = [out.event for out in RouterHandlers(load_reference()).on_intake(boeth)]
    assert any("R-CAPEMPLOI-BOETH" in getattr(e, "rules", ()) for e in derived)
    with SqlLedgerStore(tmp_path / "ledger.db") as store:
        store.append([event_record(boeth), *(event_record(e) for e in derived)])
        for entry in store.entries():
            assert not {"inform", "rules", "competent_operator", "boeth"} & set(entry.record.facts)
            assert "cap_emploi" not in " ".join(entry.record.facts.values())
            assert b"CAPEMPLOI" not in entry.leaf and b"cap_emploi" not in entry.leaf
        assert b"R-CAPEMPLOI-BOETH" in store.open_payload(1) or b"R-CAPEMPLOI-BOETH" in store.open_payload(2)
