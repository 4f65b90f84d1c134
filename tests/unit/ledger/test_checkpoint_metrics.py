"""Signing that stops shows: a checkpoint refused (the key changed, e.g. regenerated on a pod restart)
is counted, and the entries waiting for a signature and the last signing time are gauges the alerts
CepbusLedgerCheckpointRefused and CepbusLedgerSigningStopped read."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from cepbus.auditlog.note import Signer
from services.ledger.checkpointing import Checkpointing
from services.ledger.records import NewRecord
from services.ledger.signing import CheckpointPolicy
from services.ledger.store import SqlLedgerStore


def metric(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    assert value is not None, name
    return value


def records(start: int, count: int) -> list[NewRecord]:
    return [
        NewRecord(f"e{i}", "fr.cepbus.CheckpointPublished", "t", 0, None, b"")
        for i in range(start, start + count)
    ]


def test_a_new_key_cannot_extend_the_old_checkpoints_and_it_shows(tmp_path: Path) -> None:
    store = SqlLedgerStore(tmp_path / "ledger.db")
    try:
        store.append(records(0, 3))
        first = Checkpointing(
            store, Signer.generate("cep-bus.test/m"), CheckpointPolicy(1, 3600), "cep-bus-ledger"
        )
        first.sign_if_due()
        assert metric("cepbus_ledger_unsigned_entries") == 0
        assert metric("cepbus_ledger_checkpoint_signed_timestamp_seconds") > 0
        refused_before = metric("cepbus_ledger_checkpoints_refused_total")

        store.append(records(3, 2))
        regenerated = Checkpointing(
            store, Signer.generate("cep-bus.test/m"), CheckpointPolicy(1, 3600), "cep-bus-ledger"
        )
        regenerated.sign_if_due()
        assert metric("cepbus_ledger_checkpoints_refused_total") == refused_before + 1
        assert metric("cepbus_ledger_unsigned_entries") == 2  # waiting, and the alert will say so
        latest = store.latest_checkpoint()
        assert latest is not None and latest.checkpoint.size == 3
    finally:
        store.close()
