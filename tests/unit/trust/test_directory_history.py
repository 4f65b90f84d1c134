"""A directory whose history is kept: a service refuses a version older than the newest it ran with, or
another document under a serial it saw (the attack: production pointed at an older, genuinely signed
directory from before a key was revoked); the ledger appends each version to the log, in clear, once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.auditlog.leaf import DIRECTORY_EVENT_TYPE
from cepbus.reference.directory import Directory, check_signature, sign_document
from cepbus.runtime.directory_history import DirectoryHistory, DirectoryRollback, directory_history_schema
from cepbus.runtime.sqldb import SqliteDatabase
from cepbus.trust.keys import AuthorityKey
from services.ledger.directory_log import record_directory
from services.ledger.store import SqlLedgerStore
from tests.unit.trust.conftest import build, production_body

AUTHORITY = Ed25519PrivateKey.generate()


def version(serial: int, **changes: Any) -> Directory:
    body = production_body()
    body.update(serial=serial, **changes)
    return build(sign_document(body, AUTHORITY))


@pytest.fixture
def history() -> DirectoryHistory:
    return DirectoryHistory(
        SqliteDatabase(":memory:", schema=directory_history_schema("unit", "sqlite")), "unit"
    )


def test_a_service_takes_newer_versions_and_refuses_an_older_one(history: DirectoryHistory) -> None:
    assert history.admit(version(5)) is True
    assert history.admit(version(6)) is True
    with pytest.raises(DirectoryRollback, match="serial 5, older than serial 6"):
        history.admit(version(5))
    assert history.newest() is not None and history.newest()[0] == 6  # type: ignore[index]


def test_the_same_version_again_is_no_change_and_another_under_its_serial_is_refused(
    history: DirectoryHistory,
) -> None:
    first = version(7)
    assert history.admit(first) is True
    assert history.admit(build(first.document or {})) is False  # a restart: the same document
    with pytest.raises(DirectoryRollback, match="names another document"):
        history.admit(version(7, source="the same serial, other keys"))


def test_the_ledger_logs_each_version_once_in_clear_and_refuses_a_rollback(tmp_path: Path) -> None:
    store = SqlLedgerStore(tmp_path / "ledger.db")
    try:
        old, new = version(3), version(4)
        record_directory(store, old)
        record_directory(store, old)  # a restart
        record_directory(store, new)
        with pytest.raises(DirectoryRollback):
            record_directory(store, old)
        leaves = [entry.record for entry in store.entries(0, store.size())]
        assert [r.event_type for r in leaves] == [DIRECTORY_EVENT_TYPE] * 2
        assert [r.facts["directory_serial"] for r in leaves] == ["3", "4"]
        logged = json.loads(leaves[1].clear_payload or b"")
        # what the log keeps is the authority's signed document: an auditor checks it with the key alone
        check_signature(logged["signed"], logged["signatures"], AuthorityKey.of(AUTHORITY))
        assert leaves[1].facts["directory_digest"] == new.digest
    finally:
        store.close()
