"""Every table of every store says what it holds of a person and how erasure reaches it
(`SqlStore.personal_data`), read against the tables each store really creates, on SQLite and on
PostgreSQL (CEPBUS_TEST_POSTGRES_URL); and every store of the bus is one `cep-bus erase` walks."""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import services
from cepbus.runtime.sqldb import Dialect, SqlStore, parse_database_url
from cepbus_app.erasure import STORES
from services.notifier.store import NotifierStore
from tests.support.postgres import fresh_schema

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh place for one store: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_schema("declarations") as url:
        yield url


def tables_of(url: str) -> set[str]:
    """The tables in the store's database, as the database itself lists them."""
    dialect, target = parse_database_url(url, "test")
    if dialect == "sqlite":
        with sqlite3.connect(target) as conn:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
    else:
        with psycopg.connect(target) as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            ).fetchall()
    return {str(row[0]) for row in rows}


def undeclared(store_class: type[SqlStore], url: str) -> tuple[set[str], set[str]]:
    """(tables the store creates that no declaration covers, declarations of tables it does not
    create), the store opened once at `url`."""
    with store_class(url):
        pass
    tables = tables_of(url)
    declared = {item.table for item in store_class.personal_data()}
    return tables - declared, declared - tables


@pytest.mark.parametrize("store_class", [store for _, store in STORES], ids=[name for name, _ in STORES])
def test_every_table_of_every_store_declares_what_it_holds_of_a_person(
    store_class: type[SqlStore], location: str
) -> None:
    missing, stale = undeclared(store_class, location)
    assert not missing, f"{store_class.__name__}: no declaration for {sorted(missing)}"
    assert not stale, f"{store_class.__name__}: declares tables it does not create: {sorted(stale)}"
    if any(item.erasure == "destroy_key" for item in store_class.personal_data()):
        keys = [i for i in store_class.personal_data() if i.erasure == "destroy_key" and i.where]
        assert keys, f"{store_class.__name__} seals under person keys but destroys none"


class _WithAnUndeclaredTable(NotifierStore):
    """A store that grew a table nobody declared."""

    @classmethod
    def schema(cls, dialect: Dialect) -> list[str]:
        return [*super().schema(dialect), "CREATE TABLE IF NOT EXISTS notifier_drafts (text TEXT)"]


def test_a_table_nobody_declared_is_found(location: str) -> None:
    missing, stale = undeclared(_WithAnUndeclaredTable, location)
    assert missing == {"notifier_drafts"} and not stale


def test_erasure_runs_every_declared_statement_on_each_backend(location: str) -> None:
    """The declared `where` clauses are valid SQL on both dialects (an empty store: nothing erased)."""
    dialect, _ = parse_database_url(location, "test")
    for name, store_class in STORES:
        url = location if dialect == "postgresql" else location.replace("store.db", f"{name}.db")
        with store_class(url) as store:
            count = store.erase_person("p-nobody")
        assert count.rows == {} and count.keys_destroyed == 0, name


def test_every_store_of_the_bus_is_one_erasure_walks() -> None:
    """A store class anywhere under services/ that `cep-bus erase` does not know fails here."""
    for module in pkgutil.walk_packages(services.__path__, "services."):
        if module.name.rsplit(".", 1)[-1] == "store":
            importlib.import_module(module.name)

    def subclasses(cls: type[SqlStore]) -> set[type[SqlStore]]:
        found = set(cls.__subclasses__())
        return found.union(*(subclasses(sub) for sub in found))

    of_services = {cls for cls in subclasses(SqlStore) if cls.__module__.startswith("services.")}
    assert of_services == {store for _, store in STORES}
