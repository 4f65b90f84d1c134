"""Turning consumed messages into ledger records: decode, keep the exact bytes, dead-letter the rest.
No Kafka here; the Faust layer feeds it batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cepbus.metrics import DUPLICATES
from cepbus.metrics_domain import LEDGER_APPENDED
from cepbus.streaming import Incoming, Outgoing, ServiceRuntime
from services.ledger.record import NewRecord
from services.ledger.store import LedgerStore


@dataclass
class LedgerWriter:
    store: LedgerStore
    runtime: ServiceRuntime

    def prepare(self, batch: Sequence[Incoming]) -> tuple[list[NewRecord], list[Outgoing]]:
        """Records to append (the payload is the event exactly as received) and dead letters."""
        records: list[NewRecord] = []
        letters: list[Outgoing] = []
        for message in batch:
            decoded = self.runtime.decode(message)
            if isinstance(decoded, Outgoing):
                letters.append(decoded)
                continue
            envelope = decoded.envelope
            records.append(
                NewRecord(
                    event_id=str(envelope.event_id),
                    event_type=envelope.event_type,
                    topic=message.topic,
                    occurred_at_ms=int(envelope.occurred_at.timestamp() * 1000),
                    person_pseudonym=envelope.person_pseudonym,
                    payload=message.value,
                )
            )
        return records, letters

    def append(self, records: Sequence[NewRecord]) -> int:
        """Append in one transaction; redelivered events (same event id) add nothing."""
        if not records:
            return 0
        inserted = self.store.append(records)
        LEDGER_APPENDED.inc(inserted)
        if inserted < len(records):
            DUPLICATES.labels(self.runtime.service).inc(len(records) - inserted)
        return inserted
