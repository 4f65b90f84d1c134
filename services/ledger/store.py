"""Append-only storage of the ledger chain, on SQLite (one host) or PostgreSQL (shared, durable).

Both backends share `_SqlLedgerStore`: it reads the head, drops duplicates and computes the hashes, so the
chain rules exist once. A backend only supplies its connection, its DDL and how it takes the appenders'
lock; queries are written with `?` placeholders and translated for psycopg.

Defence in depth: UNIQUE(seq) and UNIQUE(event_id) stop forks and double entries even if the lock were
bypassed, and triggers make the database itself refuse UPDATE and DELETE (and TRUNCATE, and SQLite's
INSERT OR REPLACE, which deletes without firing delete triggers), so tampering needs an admin who first
drops or disables the triggers, and `verify()` then names the altered seq.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import psycopg

from services.ledger.chain import (
    GENESIS_HASH,
    LedgerEntry,
    NewRecord,
    VerifyResult,
    chain_entry,
    verify_chain,
)

TABLE = "ledger_entries"
DEFAULT_PAGE_SIZE = 500
# Bound on parameters per IN (...) list: far below SQLite's and PostgreSQL's limits.
_IN_CHUNK = 500
_COLUMNS = (
    "seq, event_id, event_type, topic, occurred_at_ms, person_pseudonym, payload, "
    "recorded_at_ms, prev_hash, entry_hash"
)
_INSERT = f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

Row = tuple[Any, ...]


class LedgerStore(Protocol):
    def append(self, records: Sequence[NewRecord]) -> int: ...
    def count(self) -> int: ...
    def count_by_type(self) -> dict[str, int]: ...
    def contains(self, event_id: str) -> bool: ...
    def entries(self, start_seq: int = 0) -> Iterator[LedgerEntry]: ...
    def head(self) -> tuple[int, bytes]: ...
    def verify(self) -> VerifyResult: ...
    def close(self) -> None: ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _entry_from_row(row: Row) -> LedgerEntry:
    seq, event_id, event_type, topic, occurred, pseudonym, payload, recorded, prev_hash, hash_ = row
    return LedgerEntry(
        seq=int(seq),
        event_id=event_id,
        event_type=event_type,
        topic=topic,
        occurred_at_ms=int(occurred),
        person_pseudonym=pseudonym,
        payload=bytes(payload),
        recorded_at_ms=int(recorded),
        prev_hash=bytes(prev_hash),
        entry_hash=bytes(hash_),
    )


class _SqlLedgerStore(ABC):
    """Everything both backends share; subclasses provide the connection-specific primitives below."""

    def __init__(self, *, clock: Callable[[], int] | None, page_size: int) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self._clock = clock or _now_ms
        self._page_size = page_size
        # One connection per store; the lock lets threads (e.g. an executor) share the store safely.
        self._lock = threading.RLock()
        self._closed = False

    # -- backend primitives -------------------------------------------------------------------------

    @abstractmethod
    def _write_transaction(self) -> AbstractContextManager[None]:
        """Begin, hold the lock that serialises appenders across processes, commit or roll back."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...

    @abstractmethod
    def _insert_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...

    @abstractmethod
    def _close_connection(self) -> None: ...

    # -- shared behaviour ---------------------------------------------------------------------------

    def append(self, records: Sequence[NewRecord]) -> int:
        """Append new events in one transaction; already stored or repeated event ids are skipped."""
        unique: dict[str, NewRecord] = {}
        for record in records:
            unique.setdefault(record.event_id, record)
        if not unique:
            return 0
        with self._lock, self._write_transaction():
            # Read the head only under the appenders' lock, else two writers would both extend it: a fork.
            stored = self._stored_ids(list(unique))
            fresh = [record for event_id, record in unique.items() if event_id not in stored]
            if not fresh:
                return 0
            seq, prev = self.head()
            recorded_at_ms = self._clock()
            rows: list[tuple[object, ...]] = []
            for record in fresh:
                entry = chain_entry(prev, seq, record, recorded_at_ms)
                rows.append(
                    (
                        entry.seq,
                        entry.event_id,
                        entry.event_type,
                        entry.topic,
                        entry.occurred_at_ms,
                        entry.person_pseudonym,
                        entry.payload,
                        entry.recorded_at_ms,
                        entry.prev_hash,
                        entry.entry_hash,
                    )
                )
                seq, prev = seq + 1, entry.entry_hash
            self._insert_many(_INSERT, rows)
            return len(rows)

    def _stored_ids(self, event_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(event_ids), _IN_CHUNK):
            chunk = event_ids[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = self._query(f"SELECT event_id FROM {TABLE} WHERE event_id IN ({marks})", chunk)
            found.update(row[0] for row in rows)
        return found

    def count(self) -> int:
        return int(self._query(f"SELECT COUNT(*) FROM {TABLE}")[0][0])

    def count_by_type(self) -> dict[str, int]:
        rows = self._query(
            f"SELECT event_type, COUNT(*) FROM {TABLE} GROUP BY event_type ORDER BY event_type"
        )
        return {event_type: int(n) for event_type, n in rows}

    def contains(self, event_id: str) -> bool:
        return bool(self._query(f"SELECT 1 FROM {TABLE} WHERE event_id = ?", (event_id,)))

    def entries(self, start_seq: int = 0) -> Iterator[LedgerEntry]:
        """Entries in seq order, fetched `page_size` at a time (keyset paging: each page is one query)."""
        next_seq = start_seq
        while True:
            rows = self._query(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE seq >= ? ORDER BY seq LIMIT ?",
                (next_seq, self._page_size),
            )
            for row in rows:
                yield _entry_from_row(row)
            if len(rows) < self._page_size:
                return
            next_seq = int(rows[-1][0]) + 1

    def head(self) -> tuple[int, bytes]:
        """(next seq, hash of the last entry), or (0, GENESIS_HASH) for an empty ledger."""
        rows = self._query(f"SELECT seq, entry_hash FROM {TABLE} ORDER BY seq DESC LIMIT 1")
        if not rows:
            return 0, GENESIS_HASH
        return int(rows[0][0]) + 1, bytes(rows[0][1])

    def verify(self) -> VerifyResult:
        return verify_chain(self.entries())

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close_connection()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_SQLITE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq INTEGER PRIMARY KEY CHECK (seq >= 0),
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    topic TEXT NOT NULL,
    occurred_at_ms INTEGER NOT NULL,
    person_pseudonym TEXT,
    payload BLOB NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    entry_hash BLOB NOT NULL CHECK (length(entry_hash) = 32)
) STRICT;
CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS {TABLE}_no_replace BEFORE INSERT ON {TABLE}
WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE seq = NEW.seq OR event_id = NEW.event_id)
BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: INSERT over an existing row refused'); END;
"""


class SqliteLedgerStore(_SqlLedgerStore):
    """One SQLite file in WAL mode; appenders in several processes serialise on `BEGIN IMMEDIATE`."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        clock: Callable[[], int] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        busy_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(clock=clock, page_size=page_size)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the lock is taken exactly where we say.
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # an acknowledged append survives power loss
            with self._write_transaction():
                for statement in _SQLITE_SCHEMA.split(";\n"):
                    if statement.strip():
                        self._conn.execute(statement)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _insert_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._lock:
            self._conn.executemany(sql, rows)

    def _close_connection(self) -> None:
        self._conn.close()


_PG_SCHEMA_LOCK_KEY = 0x6365_7062_7573_4C47  # "cepbusLG": serialises concurrent first-time DDL
_PG_SCHEMA = [
    f"""
    CREATE TABLE IF NOT EXISTS {TABLE} (
        seq BIGINT NOT NULL CHECK (seq >= 0),
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        topic TEXT NOT NULL,
        occurred_at_ms BIGINT NOT NULL,
        person_pseudonym TEXT,
        payload BYTEA NOT NULL,
        recorded_at_ms BIGINT NOT NULL,
        prev_hash BYTEA NOT NULL CHECK (octet_length(prev_hash) = 32),
        entry_hash BYTEA NOT NULL CHECK (octet_length(entry_hash) = 32),
        CONSTRAINT {TABLE}_seq_key PRIMARY KEY (seq),
        CONSTRAINT {TABLE}_event_id_key UNIQUE (event_id)
    )
    """,
    f"""
    CREATE OR REPLACE FUNCTION {TABLE}_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{TABLE} is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    f"""
    CREATE OR REPLACE TRIGGER {TABLE}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION {TABLE}_refuse_change()
    """,
    f"""
    CREATE OR REPLACE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_refuse_change()
    """,
]


class PostgresLedgerStore(_SqlLedgerStore):
    """PostgreSQL via psycopg 3; tables live in the connection's first `search_path` schema.

    Appenders serialise on `LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE`: it conflicts with itself and with
    every write, but not with readers, so `verify()` and counts keep running during appends.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], int] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        super().__init__(clock=clock, page_size=page_size)
        self._conn: psycopg.Connection[Row] = psycopg.connect(url, autocommit=True)
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK_KEY,))
                for statement in _PG_SCHEMA:
                    self._conn.execute(statement)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            self._conn.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
            yield

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        with self._lock:
            return self._conn.execute(sql.replace("?", "%s"), params).fetchall()

    def _insert_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._lock, self._conn.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)

    def _close_connection(self) -> None:
        self._conn.close()


def open_store(url: str) -> LedgerStore:
    """Open the store named by `url`.

    `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (SQLAlchemy's convention) or a bare file
    path give SQLite; `postgresql://...` or `postgres://...` give PostgreSQL.
    """
    if not url:
        raise ValueError("empty ledger store URL")
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise ValueError(f"SQLite ledger URL must look like sqlite:///path/to/ledger.db, got {url!r}")
        return SqliteLedgerStore(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresLedgerStore(url)
    if "://" in url:
        scheme = url.split("://", 1)[0]  # not the whole URL: it may carry a password
        raise ValueError(
            f"unsupported ledger store URL scheme {scheme!r}: use sqlite:///path.db, a file path, "
            "or postgresql://..."
        )
    return SqliteLedgerStore(url)
