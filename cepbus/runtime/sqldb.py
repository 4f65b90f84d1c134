"""One database connection, SQLite or PostgreSQL, for the stores that keep state that matters.

The router, referral and ledger stores keep their state in a real database (Tansu's recovery is not
trusted, DEVELOPERS.md); this module is the plumbing they share, so each store holds only its SQL.
Queries use `?` placeholders (never inside a string literal), translated for psycopg. Every
`transaction()` takes the backend's cross-process write lock: `BEGIN IMMEDIATE` on SQLite, and on
PostgreSQL an optional statement run first (e.g. a `LOCK TABLE`). A thread lock serialises the one
connection, so threads (an executor, an HTTP server) can share a `Database`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

import psycopg

from cepbus.contract.codec import SchemaLookupUnavailable

Dialect = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]


def is_unavailable(exc: BaseException) -> bool:
    """An infrastructure failure (the database locked beyond its busy timeout, down, restarting, the
    connection lost): retry later, never a verdict on the event being handled."""
    if isinstance(exc, SchemaLookupUnavailable):  # the schema registry, as infrastructure as the database
        return True
    if isinstance(exc, sqlite3.OperationalError):  # also raised for SQL mistakes: look at the message
        text = str(exc).lower()
        return any(word in text for word in ("locked", "busy", "i/o", "unable to open", "disk"))
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def parse_database_url(url: str, store: str) -> tuple[Dialect, str]:
    """The dialect and its target (a SQLite path, or the PostgreSQL URL) of `url`.

    `sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:` or a bare path give SQLite;
    `postgresql://...` or `postgres://...` give PostgreSQL. `store` names the store in error messages,
    which never echo a non-SQLite URL: it may carry a password.
    """
    if not url:
        raise ValueError(f"empty {store} store URL")
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise ValueError(f"SQLite {store} URL must look like sqlite:///path/to/{store}.db, got {url!r}")
        return "sqlite", url[len("sqlite:///") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql", url
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise ValueError(
            f"unsupported {store} store URL scheme {scheme!r}: use sqlite:///path.db, a file path, "
            "or postgresql://..."
        )
    return "sqlite", url


class Database(ABC):
    """One connection in autocommit mode; writes go through `transaction()`. Closing twice is harmless."""

    dialect: Dialect
    _conn: sqlite3.Connection | psycopg.Connection[Row]

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Begin, take the write lock, commit on success, roll back on any exception."""

    def _translate(self, sql: str) -> str:
        return sql

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        self.query(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._lock, closing(self._conn.cursor()) as cursor:
            cursor.executemany(self._translate(sql), rows)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """All result rows; an empty list for a statement that returns none."""
        with self._lock:
            cursor = self._conn.execute(self._translate(sql), params)
            return cursor.fetchall() if cursor.description else []

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """INSERT many rows in the current transaction; a backend may do it faster (PostgreSQL: COPY)."""
        marks = ", ".join("?" * len(columns))
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def add_missing_columns(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        """`ALTER TABLE ... ADD COLUMN` for each (name, type) the table lacks: a store created by an older
        version gains the columns a newer one added, keeping its rows."""
        present = set(self._column_names(table))
        with self.transaction():
            for name, sql_type in columns:
                if name not in present:
                    self.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")

    @abstractmethod
    def _column_names(self, table: str) -> list[str]: ...

    @abstractmethod
    def purge_deleted(self) -> None:
        """Make deleted rows unrecoverable from the database's files (after an erasure)."""

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


#: The files next to a SQLite database in WAL mode: the log of recent writes and its shared-memory index.
SQLITE_SIDE_FILES = ("-wal", "-shm")
STORE_FILE_MODE = 0o600


def _owner_only(path: Path, *, create: bool) -> None:
    """A store file readable and writable by its owner only: it holds personal data (sealed or not yet
    erased) and the keys that seal it. Created with that mode before SQLite opens it (so there is no
    moment it is readable by others); an existing file we own is tightened (one from an older version,
    or a WAL created before the database's mode was)."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_FILE_MODE))
    try:
        status = path.stat()
    except FileNotFoundError:
        return
    if status.st_uid == os.geteuid() and status.st_mode & 0o077:
        path.chmod(status.st_mode & 0o700)


class SqliteDatabase(Database):
    """One SQLite file in WAL mode (or `:memory:`), so readers in other processes never block the writer;
    writers in several processes serialise on `BEGIN IMMEDIATE`, waiting up to `busy_timeout_s`.
    `secure_delete` is on: a deleted row's bytes are overwritten, not left in a free page."""

    dialect: Dialect = "sqlite"
    _conn: sqlite3.Connection

    def __init__(
        self,
        path: str | Path,
        *,
        schema: Sequence[str] = (),
        pragmas: Sequence[str] = (),
        busy_timeout_s: float = 30.0,
    ) -> None:
        super().__init__()
        self._savepoints = 0  # depth of nested transactions, to name their savepoints
        in_memory = str(path) == ":memory:"
        if not in_memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _owner_only(Path(path), create=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the lock is taken exactly where we say.
        self._conn = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            for pragma in ([] if in_memory else ["journal_mode=WAL"]) + ["secure_delete=ON", *pragmas]:
                self._conn.execute(f"PRAGMA {pragma}")
            with self.transaction():
                for statement in schema:
                    self._conn.execute(statement)
            if not in_memory:  # SQLite gives them the database's mode; a file from an older version may not
                for suffix in SQLITE_SIDE_FILES:
                    _owner_only(Path(f"{path}{suffix}"), create=False)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._conn.in_transaction:  # nested: the outer transaction already holds the write lock;
                # a savepoint, so a failure rolls back only the inner writes (as PostgreSQL does)
                self._savepoints += 1
                name = f"cepbus_sp{self._savepoints}"
                self._conn.execute(f"SAVEPOINT {name}")
                try:
                    yield
                    self._conn.execute(f"RELEASE {name}")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute(f"ROLLBACK TO {name}")
                        self._conn.execute(f"RELEASE {name}")
                    raise
                finally:
                    self._savepoints -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _column_names(self, table: str) -> list[str]:
        return [row[1] for row in self.query(f"PRAGMA table_info({table})")]

    def purge_deleted(self) -> None:
        """Copy the WAL into the database and truncate it: the old page images (which still hold the
        deleted bytes) go; `secure_delete` already zeroed them in the database file."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def to_psycopg(sql: str) -> str:
    """`?` placeholders become `%s`; a literal `%` is doubled so psycopg does not take it for one."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase(Database):
    """PostgreSQL via psycopg 3; tables live in the connection's first `search_path` schema.

    `schema_lock_key` is an advisory lock held while the schema is created, so processes starting together
    do not race on `CREATE ... IF NOT EXISTS`; `write_lock`, if given, is run first in every transaction
    (e.g. `LOCK TABLE t IN SHARE ROW EXCLUSIVE MODE`, which serialises writers but not readers).
    """

    dialect: Dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        schema: Sequence[str] = (),
        schema_lock_key: int | None = None,
        write_lock: str | None = None,
    ) -> None:
        super().__init__()
        self._url = url
        self._write_lock = write_lock
        self._conn: psycopg.Connection[Row] = psycopg.connect(url, autocommit=True)
        try:
            with self._conn.transaction():
                if schema_lock_key is not None:
                    self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema_lock_key,))
                for statement in schema:
                    self._conn.execute(statement)  # no parameters: a `%` in a function body stays as is
        except BaseException:
            self._conn.close()
            raise

    def _connected(self) -> None:
        """After PostgreSQL restarted, the old connection is broken: open a new one (outside a
        transaction only; inside one the error propagates and the caller retries the whole of it)."""
        if (self._conn.closed or self._conn.broken) and self._conn.info.transaction_status in (
            psycopg.pq.TransactionStatus.IDLE,
            psycopg.pq.TransactionStatus.UNKNOWN,
        ):
            self._conn = psycopg.connect(self._url, autocommit=True)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        with self._lock:
            self._connected()
            return super().query(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._lock:
            self._connected()
            super().executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._connected()
        with self._lock, self._conn.transaction():  # nested: a savepoint
            if self._write_lock:
                self._conn.execute(self._write_lock)
            yield

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """`COPY ... FROM STDIN`: several times faster than `executemany` (a statement per row), with the
        same constraints, in the current transaction. Insert triggers fire as for INSERT."""
        if not rows:
            return
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self._lock:
            self._connected()
            with self._conn.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)

    def _translate(self, sql: str) -> str:
        return to_psycopg(sql)

    def _column_names(self, table: str) -> list[str]:
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return [row[0] for row in rows]

    def purge_deleted(self) -> None:
        """VACUUM the tables so dead tuples are removed from the heap, then ask for a checkpoint (which
        recycles the WAL segments holding the old row images) when the role may (pg_checkpoint)."""
        with self._lock:
            tables = [row[0] for row in self._conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall()]  # fmt: skip
            for table in tables:
                self._conn.execute(f'VACUUM "{table}"')
            # without pg_checkpoint, the WAL is recycled at the next scheduled checkpoint
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                self._conn.execute("CHECKPOINT")


@dataclass(frozen=True)
class StoreOptions:
    """How a store wants its database: SQLite's busy timeout and pragmas, PostgreSQL's write lock (run
    first in every transaction) and the advisory lock that serialises concurrent schema creation."""

    busy_timeout_s: float = 30.0
    sqlite_pragmas: tuple[str, ...] = ()
    postgres_write_lock: str | None = None
    schema_lock_key: int | None = None


def open_database(
    url: str,
    store: str,
    *,
    schema: Sequence[str] = (),
    schema_lock_key: int | None = None,
    options: StoreOptions | None = None,
) -> Database:
    """Open (and create the `schema` of) the database named by `url`; see `parse_database_url`."""
    options = options or StoreOptions(schema_lock_key=schema_lock_key)
    dialect, target = parse_database_url(url, store)
    if dialect == "sqlite":
        return SqliteDatabase(
            target, schema=schema, pragmas=options.sqlite_pragmas, busy_timeout_s=options.busy_timeout_s
        )
    return PostgresDatabase(
        target,
        schema=schema,
        schema_lock_key=options.schema_lock_key if options.schema_lock_key is not None else schema_lock_key,
        write_lock=options.postgres_write_lock,
    )


#: How erasure reaches what a table holds of a person:
#: - `destroy_key`: it is sealed under the person's key (`cepbus.runtime.vault`); erasure destroys the key
#:   (the declaration of the keys table itself says which rows: `where`), the ciphertext becomes noise;
#: - `delete_rows`: the rows about the person (`where`) are deleted;
#: - `blank_column`: the rows about the person keep what is not personal, `columns` are blanked;
#: - `nothing_personal`: nothing of a person (`holds` says why).
Erasure = Literal["destroy_key", "delete_rows", "blank_column", "nothing_personal"]
ERASURES: tuple[Erasure, ...] = ("destroy_key", "delete_rows", "blank_column", "nothing_personal")


@dataclass(frozen=True)
class PersonalData:
    """What one table of a store holds of a person, in words, and how erasure reaches it: a store
    declares every table it creates, so that an erasure, a review and a test all read the same list.

    `where` selects the rows about the person (each `?` is the pseudonym; a subquery may follow links to
    other tables of the store). `columns` are set to NULL by `blank_column`, or to the SQL expression
    `neutral` gives for a NOT NULL one. A table may have several declarations (a sealed column and a
    clear one); they run in the order given, so a statement that finds rows through another table's
    pseudonym comes before the one that blanks it."""

    table: str
    holds: str
    erasure: Erasure
    where: str = ""
    columns: tuple[str, ...] = ()
    neutral: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.erasure not in ERASURES:
            raise ValueError(f"{self.table}: erasure must be one of {ERASURES}, got {self.erasure!r}")
        if not self.holds.strip():
            raise ValueError(f"{self.table}: say what the table holds of a person (or why nothing)")
        if self.erasure == "blank_column" and not (self.where and (self.columns or self.neutral)):
            raise ValueError(f"{self.table}: blank_column needs the rows (`where`) and the columns")
        if self.erasure == "nothing_personal" and (self.where or self.columns or self.neutral):
            raise ValueError(f"{self.table}: nothing personal, nothing to erase")

    def statement(self) -> str | None:
        """The statement that erases the person's part of the table (None: nothing to run here)."""
        if not self.where or self.erasure == "nothing_personal":
            return None
        if self.erasure == "blank_column":
            sets = [f"{column} = NULL" for column in self.columns]
            sets += [f"{column} = {expression}" for column, expression in self.neutral]
            return f"UPDATE {self.table} SET {', '.join(sets)} WHERE {self.where}"
        return f"DELETE FROM {self.table} WHERE {self.where}"


@dataclass(frozen=True)
class ErasureCount:
    """What one store's erasure reached: rows per table (deleted or blanked), keys destroyed, and the
    ledger's erasure entry when the store records one."""

    store: str
    rows: dict[str, int]
    keys_destroyed: int = 0
    erasure_entry: int | None = None

    def of(self, table: str) -> int:
        return self.rows.get(table, 0)


class SqlStore:
    """The one way a store opens its database: `Store(url)` with a SQLite path or URL, or a PostgreSQL
    URL. A store says its name (for messages), its DDL per dialect (`schema`) and, if it needs them, its
    database options (`options`); it is closed once, by `close()` or by leaving a `with` block."""

    store_name: ClassVar[str]

    def __init__(self, url: str | Path, options: StoreOptions | None = None) -> None:
        url = str(url)
        dialect, _ = parse_database_url(url, self.store_name)
        self._db = open_database(
            url, self.store_name, schema=self.schema(dialect), options=options or self.options(dialect)
        )

    @classmethod
    def schema(cls, dialect: Dialect) -> list[str]:
        """The statements that create the store's tables (idempotent: `IF NOT EXISTS`)."""
        raise NotImplementedError

    @classmethod
    def options(cls, dialect: Dialect) -> StoreOptions:
        return StoreOptions()

    @classmethod
    def personal_data(cls) -> Sequence[PersonalData]:
        """What each table of the store holds of a person and how erasure reaches it: every table the
        schema creates is declared (tests/unit/runtime/test_personal_data_declarations.py fails on one
        that is not). None by default: a store that declares nothing fails that test."""
        return ()

    def erase_person(self, pseudonym: str) -> ErasureCount:
        """Erase the person as the declarations say, in one transaction, then purge the files (SQLite
        WAL checkpointed and truncated with secure_delete on; PostgreSQL vacuumed) so that neither the
        deleted rows nor the destroyed keys remain on disk."""
        rows: dict[str, int] = {}
        keys = 0
        with self._db.transaction():
            for item in self.personal_data():
                statement = item.statement()
                if statement is None:
                    continue
                params = (pseudonym,) * item.where.count("?")
                found = self._db.query(f"SELECT COUNT(*) FROM {item.table} WHERE {item.where}", params)
                count = int(found[0][0])
                if not count:
                    continue
                self._db.execute(statement, params)
                rows[item.table] = rows.get(item.table, 0) + count
                keys += count if item.erasure == "destroy_key" else 0
        self._db.purge_deleted()
        return ErasureCount(self.store_name, rows, keys)

    @property
    def database(self) -> Database:
        return self._db

    def transaction(self) -> AbstractContextManager[None]:
        """Group several writes (a stream batch) in one transaction: one commit, one fsync."""
        return self._db.transaction()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
