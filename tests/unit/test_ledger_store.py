"""Ledger storage, run against both backends.

SQLite always runs, in tmp_path. PostgreSQL runs when CEPBUS_TEST_POSTGRES_URL is set (for instance to the
URL printed by scripts/start-postgres.sh). Each PostgreSQL test gets its own schema, created up front and
selected with `options=-csearch_path=<schema>` in the store URL, then dropped with CASCADE: the no-delete
triggers forbid DELETE/TRUNCATE of rows, not dropping the schema, so tests never need to bypass them.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from services.ledger.chain import GENESIS_HASH, NewRecord, entry_hash
from services.ledger.store import (
    TABLE,
    LedgerStore,
    PostgresLedgerStore,
    SqliteLedgerStore,
    open_store,
)

POSTGRES_URL_ENV = "CEPBUS_TEST_POSTGRES_URL"
TYPES = ("IntakeRegistered", "NoticeIssued", "ChoiceRecorded", "ReferralRequested")


def record(event_id: str, n: int = 0) -> NewRecord:
    return NewRecord(
        event_id=event_id,
        event_type=TYPES[n % len(TYPES)],
        topic="cep.regulation",
        occurred_at_ms=1_700_000_000_000 + n,
        person_pseudonym=None if n % 3 == 0 else f"psn-{n % 5}",
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

    def open(self, **kwargs: Any) -> SqliteLedgerStore | PostgresLedgerStore:
        store: SqliteLedgerStore | PostgresLedgerStore
        if self.name == "sqlite":
            store = SqliteLedgerStore(self.url, **kwargs)
        else:
            store = PostgresLedgerStore(self.url, **kwargs)
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
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (TABLE,)
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
                pg.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
                pg.execute(statement, params)
                pg.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


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
                f"INSERT OR REPLACE INTO {TABLE} SELECT seq, event_id, 'Forged', topic, occurred_at_ms, "
                "person_pseudonym, payload, recorded_at_ms, prev_hash, entry_hash "
                f"FROM {TABLE} WHERE seq = 1",
                f"INSERT INTO {TABLE} SELECT * FROM {TABLE} WHERE seq = 1 "
                "ON CONFLICT (seq) DO UPDATE SET event_type = 'Forged'",
            ],
        )
        yield b
        b.close_all()
        return
    base_url = os.environ.get(POSTGRES_URL_ENV)
    if not base_url:
        pytest.skip(f"PostgreSQL backend: set {POSTGRES_URL_ENV} (scripts/start-postgres.sh prints one)")
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    b = Backend(
        name="postgres",
        url=with_search_path(base_url, schema),
        error=psycopg.Error,
        mark="%s",
        forbidden=[
            f"TRUNCATE {TABLE}",
            f"INSERT INTO {TABLE} SELECT * FROM {TABLE} WHERE seq = 1 "
            "ON CONFLICT (seq) DO UPDATE SET event_type = 'Forged'",
        ],
    )
    try:
        yield b
    finally:
        b.close_all()
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


# -- behaviour -------------------------------------------------------------------------------------------


def test_append_count_contains_and_read_back(backend: Backend) -> None:
    store = backend.open(clock=lambda: 1_234)
    assert (store.count(), store.head(), store.count_by_type()) == (0, (0, GENESIS_HASH), {})
    batch = records("a", 10)
    assert store.append(batch) == 10
    assert store.count() == 10
    assert store.count_by_type() == {"ChoiceRecorded": 2, "IntakeRegistered": 3, "NoticeIssued": 3,
                                     "ReferralRequested": 2}  # fmt: skip
    assert store.contains("a-3") and not store.contains("a-10")
    entries = list(store.entries())
    assert [e.seq for e in entries] == list(range(10))
    assert [e.record for e in entries] == batch
    assert all(e.recorded_at_ms == 1_234 for e in entries)
    assert entries[0].prev_hash == GENESIS_HASH
    assert entries[5].entry_hash == entry_hash(entries[4].entry_hash, 5, batch[5], 1_234)
    assert store.head() == (10, entries[-1].entry_hash)
    assert store.verify().ok


def test_duplicates_across_and_within_batches_add_nothing(backend: Backend) -> None:
    store = backend.open()
    assert store.append(records("a", 5)) == 5
    assert store.append(records("a", 5)) == 0
    head = store.head()
    assert store.append([]) == 0
    first, second = record("b-0", 1), record("b-0", 2)  # same id, different content: the first wins
    batch = [first, record("a-1", 1), second, record("b-1"), record("b-1"), record("a-4", 4)]
    assert store.append(batch) == 2
    assert store.count() == 7
    assert store.head()[0] == head[0] + 2
    assert [e.record for e in store.entries(start_seq=5)] == [first, record("b-1")]
    assert store.verify().ok


def test_failed_append_leaves_nothing_behind(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    store = backend.open()
    store.append(records("a", 3))
    head = store.head()
    original = store._insert_many

    def insert_then_fail(statement: str, rows: Any) -> None:
        original(statement, rows)
        raise RuntimeError("crash after insert, before commit")

    monkeypatch.setattr(store, "_insert_many", insert_then_fail)
    with pytest.raises(RuntimeError, match="crash after insert"):
        store.append(records("b", 4))
    monkeypatch.undo()
    assert (store.count(), store.head()) == (3, head)
    assert store.append(records("b", 4)) == 4
    assert store.verify().ok


def test_chain_verifies_after_many_appends_and_reopens(backend: Backend) -> None:
    clock = iter(range(1_000, 10**9, 7))
    total = 0
    for session in range(5):
        store = backend.open(page_size=13, clock=lambda: next(clock))
        assert store.head()[0] == total
        for batch in range(12):
            size = (session * 12 + batch) % 9  # includes empty batches
            total += store.append(records(f"s{session}-b{batch}", size))
            store.append(records(f"s{session}-b{batch}", size))  # replay: Kafka redelivery after a crash
        assert store.count() == total
        store.close()
    store = backend.open(page_size=13)
    result = store.verify()
    assert result.ok, result.reason
    assert result.entries_checked == total == store.count() > 100
    assert result.head_hash == store.head()[1]
    assert [e.seq for e in store.entries(start_seq=total - 20)] == list(range(total - 20, total))
    assert list(store.entries(start_seq=total)) == []


def test_normal_connection_cannot_update_or_delete(backend: Backend) -> None:
    store = backend.open()
    store.append(records("a", 5))
    head = store.head()
    statements = [
        f"UPDATE {TABLE} SET payload = payload WHERE seq = 1",
        f"UPDATE {TABLE} SET event_type = 'Forged'",
        f"DELETE FROM {TABLE} WHERE seq = 4",
        f"DELETE FROM {TABLE}",
        *backend.forbidden,
    ]
    for statement in statements:
        with pytest.raises(backend.error, match="append-only"):
            backend.execute(statement)
    assert (store.count(), store.head()) == (5, head)
    assert store.verify().ok


def _tampered(backend: Backend, statement: str, params: tuple[object, ...] = ()) -> LedgerStore:
    store = backend.open()
    store.append(records("a", 20))
    assert store.verify().ok
    backend.attack(statement, params)
    return store


def test_tampered_payload_is_detected(backend: Backend) -> None:
    store = _tampered(backend, f"UPDATE {TABLE} SET payload = {backend.mark} WHERE seq = 7", (b"forged",))
    result = store.verify()
    assert (result.ok, result.first_bad_seq, result.entries_checked) == (False, 7, 7)
    with pytest.raises(backend.error, match="append-only"):  # the attacker put the trigger back
        backend.execute(f"UPDATE {TABLE} SET payload = payload")


def test_tampered_stored_hash_is_detected(backend: Backend) -> None:
    store = _tampered(backend, f"UPDATE {TABLE} SET entry_hash = {backend.mark} WHERE seq = 12", (bytes(32),))
    result = store.verify()
    assert (result.ok, result.first_bad_seq) == (False, 12)


def test_rewrite_with_recomputed_hash_is_detected_at_the_next_link(backend: Backend) -> None:
    honest = backend.open()
    honest.append(records("a", 20))
    victim = next(honest.entries(start_seq=9))
    forged = NewRecord(**{**victim.record.__dict__, "payload": b"forged"})
    new_hash = entry_hash(victim.prev_hash, 9, forged, victim.recorded_at_ms)
    m = backend.mark
    backend.attack(f"UPDATE {TABLE} SET payload = {m}, entry_hash = {m} WHERE seq = 9", (b"forged", new_hash))
    result = backend.open().verify()
    assert (result.ok, result.first_bad_seq) == (False, 10)


def test_deleted_row_is_detected(backend: Backend) -> None:
    store = _tampered(backend, f"DELETE FROM {TABLE} WHERE seq = 4")
    assert store.count() == 19
    result = store.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert result.reason is not None and "missing" in result.reason


def _append_concurrently(url: str, worker: int, batches: int, start: Any, results: Any) -> None:
    """Child process: a second ledger consumer. Half of each batch is shared with the other worker."""
    store = open_store(url)
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


def test_two_processes_appending_concurrently_keep_one_chain(backend: Backend) -> None:
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
    assert {e.event_id for e in entries} == expected_ids
    owners = [e.event_id[:2] for e in entries if e.event_id.startswith("w")]
    switches = sum(a != b for a, b in itertools.pairwise(owners))
    assert switches > 1, "the two writers never overlapped, so this run proved nothing about locking"
    result = store.verify()
    assert result.ok, result.reason
    assert result.entries_checked == len(expected_ids)


# -- SQLite specifics and open_store ---------------------------------------------------------------------


def test_sqlite_file_is_in_wal_mode_with_parent_dirs_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.db"
    SqliteLedgerStore(path).close()
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
        store = open_store(url)
        try:
            assert isinstance(store, SqliteLedgerStore)
            assert store.append([record("x")]) == 1
        finally:
            store.close()
        assert expected.is_file(), url


@pytest.mark.parametrize(
    "url", ["", "sqlite://", "sqlite:///", "sqlite:relative.db", "mysql://root:s3cret@db/ledger", "kafka://x"]
)
def test_open_store_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        open_store(url)
    assert "s3cret" not in str(excinfo.value)


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_postgres_urls(scheme: str) -> None:
    base_url = os.environ.get(POSTGRES_URL_ENV)
    if not base_url:
        pytest.skip(f"PostgreSQL backend: set {POSTGRES_URL_ENV} (scripts/start-postgres.sh prints one)")
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    url = with_search_path(base_url, schema)
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        store = open_store(scheme + url[url.index("://") :])
        try:
            assert isinstance(store, PostgresLedgerStore)
            assert store.append([record("x")]) == 1
            assert store.verify().ok
        finally:
            store.close()
    finally:
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
