"""The shared database plumbing (`cepbus.runtime.sqldb`), run against both backends.

SQLite always runs, in tmp_path; PostgreSQL runs when CEPBUS_TEST_POSTGRES_URL is set, each test in a
schema of its own selected through the URL's search_path, dropped afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from cepbus.runtime.sqldb import (
    Database,
    PostgresDatabase,
    SqliteDatabase,
    open_database,
    parse_database_url,
    to_psycopg,
)
from tests.support.postgres import fresh_schema

SCHEMA = ["CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, label TEXT NOT NULL)"]
LOCK = "LOCK TABLE items IN SHARE ROW EXCLUSIVE MODE"

Opener = Callable[..., Database]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens databases on one store location (a file, or a fresh schema), closing them all at the end."""
    opened: list[Database] = []

    def remember(db: Database) -> Database:
        opened.append(db)
        return db

    if request.param == "sqlite":
        path = tmp_path / "sub" / "db.sqlite"
        yield lambda **options: remember(SqliteDatabase(path, schema=SCHEMA, **options))
        for db in opened:
            db.close()
        return
    with fresh_schema("sqldb_test") as url:
        try:
            yield lambda **options: remember(PostgresDatabase(url, schema=SCHEMA, write_lock=LOCK, **options))
        finally:
            for db in opened:
                db.close()


def test_a_failed_transaction_leaves_nothing_and_a_good_one_commits(opener: Opener) -> None:
    db = opener()
    with db.transaction():
        db.execute("INSERT INTO items (id, label) VALUES (?, ?)", (1, "kept"))
    with pytest.raises(RuntimeError, match="boom"), db.transaction():
        db.executemany("INSERT INTO items (id, label) VALUES (?, ?)", [(2, "lost"), (3, "lost")])
        assert db.query("SELECT COUNT(*) FROM items") == [(3,)]  # visible inside the transaction
        raise RuntimeError("boom")
    assert db.query("SELECT id, label FROM items ORDER BY id") == [(1, "kept")]
    with db.transaction():  # the connection is usable again: nothing was left open
        db.execute("INSERT INTO items (id, label) VALUES (?, ?)", (2, "second"))
    assert db.query("SELECT id FROM items ORDER BY id") == [(1,), (2,)]


def test_a_failed_nested_transaction_rolls_back_only_its_own_writes(opener: Opener) -> None:
    """A stream batch runs in one outer transaction; an event whose handler fails inside it loses
    only its own writes (a savepoint), the others commit together."""
    db = opener()
    with db.transaction():
        db.execute("INSERT INTO items (id, label) VALUES (?, ?)", (1, "before"))
        with pytest.raises(RuntimeError, match="boom"), db.transaction():
            db.execute("INSERT INTO items (id, label) VALUES (?, ?)", (2, "lost"))
            raise RuntimeError("boom")
        with db.transaction():
            db.execute("INSERT INTO items (id, label) VALUES (?, ?)", (3, "after"))
    assert db.query("SELECT id FROM items ORDER BY id") == [(1,), (3,)]


def test_placeholders_are_translated_and_a_literal_percent_survives(opener: Opener) -> None:
    db = opener()
    with db.transaction():
        db.execute("INSERT INTO items (id, label) VALUES (?, ?)", (1, "50% off"))
    assert db.query("SELECT label FROM items WHERE label LIKE '%off' AND id = ?", (1,)) == [("50% off",)]
    assert db.query("SELECT ? || '%'", ("a",)) == [("a%",)]
    assert db.query("DELETE FROM items WHERE id = ?", (9,)) == []  # no result rows: an empty list
    assert to_psycopg("SELECT '%' WHERE a = ? AND b = ?") == "SELECT '%%' WHERE a = %s AND b = %s"


def test_a_transaction_holds_the_write_lock_against_other_connections(opener: Opener) -> None:
    first = opener()
    second = opener()
    if first.dialect == "sqlite":
        second.close()
        second = opener(busy_timeout_s=0.1)
        expected_error: type[Exception] = sqlite3.OperationalError
    else:
        second.execute("SET lock_timeout = '100ms'")
        expected_error = psycopg.errors.LockNotAvailable
    with first.transaction():
        first.execute("INSERT INTO items (id, label) VALUES (?, ?)", (1, "first"))
        with pytest.raises(expected_error), second.transaction():
            second.execute("INSERT INTO items (id, label) VALUES (?, ?)", (2, "second"))
        assert second.query("SELECT COUNT(*) FROM items") == [(0,)]  # readers are not blocked
    with second.transaction():
        second.execute("INSERT INTO items (id, label) VALUES (?, ?)", (2, "second"))
    assert first.query("SELECT id FROM items ORDER BY id") == [(1,), (2,)]


def test_closing_twice_is_harmless(opener: Opener) -> None:
    db = opener()
    db.close()
    db.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///rel/x.db", ("sqlite", "rel/x.db")),
        ("sqlite:////abs/x.db", ("sqlite", "/abs/x.db")),
        ("sqlite:///:memory:", ("sqlite", ":memory:")),
        ("bare/x.db", ("sqlite", "bare/x.db")),
        ("postgresql://u:p@h/db", ("postgresql", "postgresql://u:p@h/db")),
        ("postgres://h/db", ("postgresql", "postgres://h/db")),
    ],
)
def test_urls_name_their_backend(url: str, expected: tuple[str, str]) -> None:
    assert parse_database_url(url, "router") == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty router store URL"),
        ("sqlite://", "SQLite router URL must look like sqlite:///path/to/router.db, got 'sqlite://'"),
        ("sqlite:///", "SQLite router URL must look like sqlite:///path/to/router.db"),
        ("sqlite:x.db", "SQLite router URL must look like"),
        ("mysql://root:s3cret@db/x", "unsupported router store URL scheme 'mysql'"),
    ],
)
def test_bad_urls_are_refused_clearly_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_database_url(url, "router")
    assert str(excinfo.value).startswith(message)
    assert "s3cret" not in str(excinfo.value)


def test_open_database_creates_the_schema_in_memory() -> None:
    with open_database("sqlite:///:memory:", "test", schema=SCHEMA) as db:
        assert db.dialect == "sqlite"
        with db.transaction():
            db.execute("INSERT INTO items (id, label) VALUES (?, ?)", (1, "x"))
        assert db.query("SELECT label FROM items") == [("x",)]
