"""Checkpoint publication, without a broker: the event carries the signed note faithfully, round-trips the
Avro contract, keeps a stable id, and the latest unsent checkpoint is the one that goes out."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from cepbus.auditlog.note import NoteError, Signer, open_checkpoint
from cepbus.contract import codec
from cepbus.contract.models import CheckpointPublished
from services.ledger.publication import CheckpointPublication, checkpoint_event
from services.ledger.records import NewRecord
from services.ledger.store import SqlLedgerStore


def test_checkpoint_events_carry_a_verifiable_note_and_a_stable_id(tmp_path: Path) -> None:
    signer = Signer.generate("cep-bus.test/ledger")
    publication = CheckpointPublication()
    with SqlLedgerStore(tmp_path / "ledger.db") as store:
        assert publication.pending(store.latest_checkpoint()) is None  # nothing signed yet
        store.append([NewRecord(f"e{i}", "fr.cepbus.X", "t", i, "p-1", b"x") for i in range(5)])
        first = store.checkpoint(signer)
        assert first is not None
        assert publication.pending(store.latest_checkpoint()) == first
        publication.sent(first)
        assert publication.pending(store.latest_checkpoint()) is None
        store.append([NewRecord("e9", "fr.cepbus.X", "t", 9, "p-1", b"x")])
        second = store.checkpoint(signer)
        assert second is not None and publication.pending(store.latest_checkpoint()) == second

    event = checkpoint_event(first, "cep-bus-ledger")
    decoded = codec.decode(codec.encode(event))
    assert isinstance(decoded, CheckpointPublished) and decoded == event
    assert event.partition_key() == b"cep-bus.test/ledger"
    checkpoint = open_checkpoint(decoded.signed_note, signer.verifier())
    assert (checkpoint.size, base64.b64encode(checkpoint.root).decode()) == (5, event.root_hash_b64)
    assert checkpoint_event(first, "cep-bus-ledger").event_id == event.event_id  # a resend dedupes
    assert checkpoint_event(second, "cep-bus-ledger").event_id != event.event_id
    with pytest.raises(NoteError):
        open_checkpoint(decoded.signed_note, Signer.generate("cep-bus.test/ledger").verifier())
