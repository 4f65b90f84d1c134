"""Ledger records as the ledger service builds them from a delivered event, for tests that fill a ledger
store directly (without the writer): the payload is the event's bytes, the facts those the writer keeps
in clear, computed from the event decoded from those bytes (as the runtime hands it to the writer)."""

from __future__ import annotations

from cepbus.contract import codec
from cepbus.contract.models import Event
from services.ledger.facts import regulation_facts
from services.ledger.records import NewRecord


def ledger_record(
    event: Event,
    topic: str = "cep.intake.registered",
    *,
    occurred_ms: int | None = None,
    person: str | None = None,
) -> NewRecord:
    payload = codec.encode(event)
    envelope = event.envelope
    return NewRecord(
        str(envelope.event_id),
        event.avro_name,
        topic,
        int(envelope.occurred_at.timestamp() * 1000) if occurred_ms is None else occurred_ms,
        person or envelope.person_pseudonym,
        payload,
        facts=regulation_facts(codec.decode(payload)),
    )
