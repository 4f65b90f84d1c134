"""Store files are their owner's only: a SQLite database, its WAL and its shared-memory index are created
0600 (before SQLite writes a byte to them), an older world-readable one is tightened when opened, and the
bundle `cep-bus ledger export` writes is 0600 too."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cepbus.auditlog.note import Signer
from cepbus.runtime.sqldb import SqliteDatabase
from cepbus_app.cli import app
from services.ledger.store import SqlLedgerStore
from tests.support.factories import intake
from tests.support.ledger import ledger_record

SCHEMA = ["CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, label TEXT NOT NULL)"]


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (022): without the stores' care, every file would be world-readable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_and_its_wal_and_shm_are_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SqliteDatabase(path, schema=SCHEMA) as db:
        with db.transaction():
            db.execute("INSERT INTO items (id, label) VALUES (1, 'a person')")
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_a_world_readable_store_from_before_is_tightened_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SqliteDatabase(path, schema=SCHEMA).close()
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            name.chmod(0o644)
    with SqliteDatabase(path, schema=SCHEMA) as db:
        with db.transaction():
            db.execute("INSERT INTO items (id, label) VALUES (1, 'a person')")
        assert mode(path) == 0o600
        assert mode(Path(f"{path}-wal")) == 0o600 and mode(Path(f"{path}-shm")) == 0o600


def test_the_export_bundle_is_written_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, key, bundle = tmp_path / "ledger.db", tmp_path / "signing.key", tmp_path / "bundle.json"
    key.write_text(str(Signer.generate("cep-bus.test/ledger")) + "\n")
    key.chmod(0o600)
    monkeypatch.setenv("CEPBUS_LEDGER_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(key))
    monkeypatch.setenv("CEPBUS_LEDGER_ORIGIN", "cep-bus.test/ledger")
    with SqlLedgerStore(f"sqlite:///{db}") as store:
        store.append([ledger_record(intake(person="p-bundle"))])
    bundle.write_text("{}")
    bundle.chmod(0o644)  # an older export in the way: overwritten, and tightened
    result = CliRunner().invoke(app, ["ledger", "export", "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    assert mode(bundle) == 0o600 and bundle.read_text().startswith("{") and len(bundle.read_text()) > 2
