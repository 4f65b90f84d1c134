"""Turning consumed events into ledger records and appending them. No Kafka here: the runtime feeds it
batches.

The ledger records verdicts, not claims: an event is appended only when its type is its topic's
payload and its producer may write that topic (`cepbus.reference.producers.ProducerCatalog`); anything
else is refused (a dead letter with the reason) and never appended. The event's bytes are kept exactly
as received, so the ledger proves what it was sent. An event id already in the ledger with other
content is a collision: refused, counted, alerted, never taken for a redelivery.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Any
from uuid import UUID

from cepbus.auditlog.leaf import StatementProof
from cepbus.contract import codec
from cepbus.contract.models import Event, ReferralRequested
from cepbus.contract.schemas import event_schema
from cepbus.contract.topics import TopicSpec
from cepbus.reference.producers import ClaimProblem, ProducerCatalog
from cepbus.runtime.messages import Incoming, Outgoing, Received, Refusal
from cepbus.runtime.metrics import DUPLICATES
from services.ledger.checkpointing import Checkpointing
from services.ledger.facts import SIGNER_SEALED_ON, regulation_facts
from services.ledger.metrics import LEDGER_APPENDED, LEDGER_ID_COLLISIONS, LEDGER_REFUSED
from services.ledger.records import NewRecord
from services.ledger.store import LedgerStore

SERVICE = "ledger"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if isinstance(value, UUID | Enum):
        return str(value.value if isinstance(value, Enum) else value)
    raise TypeError(f"{type(value).__name__} in an event")


def content_digest(event: Event) -> str:
    """What makes two deliveries of one event id the same event: every field but the envelope's
    `occurred_at`, which a service re-deriving the event after a crash sets anew."""
    data = event.model_dump(mode="python")
    data["envelope"].pop("occurred_at", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def kept_payload(item: Received) -> bytes:
    """The event's bytes as the ledger seals them: as sent, but for a referral's sealed contact, whose
    ciphertext is emptied (its SHA-256, in the same record, stays). The ledger never keeps the box it
    cannot open (issue #24); the leaf's statement digest remains that of the bytes the author signed."""
    event = item.event
    if isinstance(event, ReferralRequested) and event.sealed_contact is not None:
        record = event.model_dump(mode="python")
        record["sealed_contact"]["ciphertext"] = b""
        return codec.encode_record(event_schema(event.avro_name), record)
    return codec.single_object(item.message.value)


def new_record(item: Received) -> NewRecord:
    envelope = item.event.envelope
    facts = regulation_facts(item.event)  # from the event already decoded: the bytes are read once
    statement = None
    if item.author is not None:
        if envelope.event_type in SIGNER_SEALED_ON:  # its signer names the person's public: digest only
            facts["statement_digest"] = item.author.digest.hex()
        else:
            statement = StatementProof.of(item.author.digest, item.author.signature)
    return NewRecord(
        event_id=str(envelope.event_id),
        event_type=envelope.event_type,
        topic=item.message.topic,
        occurred_at_ms=int(envelope.occurred_at.timestamp() * 1000),
        person_pseudonym=envelope.person_pseudonym,
        # as single-object whatever the framing it came in: a leaf names its writer schema by
        # fingerprint, so an auditor reads it from schemas/avro without the bus's schema registry
        payload=kept_payload(item),
        facts=facts,
        content_digest=content_digest(item.event),
        statement=statement,
    )


@dataclass
class LedgerWriter:
    store: LedgerStore
    producers: ProducerCatalog
    topics: Mapping[str, TopicSpec]
    checkpoints: Checkpointing | None = None  # signs a checkpoint after a batch when one is due

    def append(self, records: Sequence[NewRecord]) -> int:
        """Append in one transaction; redelivered events (same event id and content) add nothing."""
        if not records:
            return 0
        outcome = self.store.append_checked(records)
        LEDGER_APPENDED.inc(outcome.appended)
        if outcome.duplicates:
            DUPLICATES.labels(SERVICE).inc(outcome.duplicates)
        return outcome.appended

    def append_batch(self, batch: Sequence[Received]) -> list[Outgoing | Refusal]:
        """The batch handler: judge each event, append those allowed, refuse the rest. An exception (the
        store unavailable) makes the runtime retry the batch, never ack it."""
        refusals: list[Outgoing | Refusal] = []
        records: list[NewRecord] = []
        messages: dict[tuple[str, str], Incoming] = {}
        for item in batch:
            topic = self.topics.get(item.message.topic)
            problem = (
                ClaimProblem("not_a_ledger_topic", f"{item.message.topic} is not recorded by the ledger")
                if topic is None
                # the runtime's edge judged an event it verified against the same catalog: not twice
                else None
                if item.author is not None
                else self.producers.judge(item.event, topic)
            )
            if problem is not None:
                refusals.append(Refusal(item.message, problem.reason, problem.detail))
                LEDGER_REFUSED.labels(problem.reason).inc()
                continue
            record = new_record(item)
            records.append(record)
            messages.setdefault((record.event_id, record.digest()), item.message)
        if records:
            outcome = self.store.append_checked(records)
            LEDGER_APPENDED.inc(outcome.appended)
            if outcome.duplicates:
                DUPLICATES.labels(SERVICE).inc(outcome.duplicates)
            for record in outcome.collisions:
                LEDGER_ID_COLLISIONS.inc()
                refusals.append(
                    Refusal(
                        messages[(record.event_id, record.digest())],
                        "id_collision",
                        f"event id {record.event_id} is already in the ledger with other content",
                    )
                )
        if self.checkpoints is not None:
            self.checkpoints.sign_if_due()
        return refusals
