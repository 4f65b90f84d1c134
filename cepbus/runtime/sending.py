"""The send side of a service, whichever Kafka client sends: what every send goes through (the wiring
check, the fault points, the request record, the framing, the metrics) and the outbox relay.

Written once, without a client: a driver turns a `SendBatch` into produce calls and tells the relay
when the broker acknowledged it (sans-IO, so the blocking batch driver and the asyncio Faust driver
share every line that is not the client call itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cepbus.contract import codec
from cepbus.contract.wiring import check_writes
from cepbus.runtime.framing import Framing
from cepbus.runtime.instruments import NO_INSTRUMENTS, Instruments
from cepbus.runtime.messages import Outgoing
from cepbus.runtime.metrics import EVENTS_OUT
from cepbus.runtime.outbox import Outbox, StoredMessage


@dataclass(frozen=True)
class WireMessage:
    """A message as the producer takes it: topic, key, framed value, headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class SendSide:
    """One service's sends: framed as the bus is configured (`CEPBUS_WIRE_FORMAT`), checked against the
    wiring the ACLs are made from, recorded as its Kafka principal, counted once acknowledged."""

    def __init__(self, service: str, framing: Framing, instruments: Instruments = NO_INSTRUMENTS) -> None:
        self.service = service
        self.framing = framing
        self.instruments = instruments
        self.principal = f"cepbus-{service}"  # its KafkaUser
        self._events_out: dict[str, Any] = {}

    def outputs(self, outputs: Sequence[Outgoing]) -> list[WireMessage]:
        """Events decided but not stored (a batch route, a timer without outbox), encoded and framed."""
        frame = self.framing.frame
        return [
            WireMessage(o.topic, o.key(), frame(codec.encode(o.event), o.topic), o.headers()) for o in outputs
        ]

    def stored(self, rows: Sequence[StoredMessage]) -> list[WireMessage]:
        """Outbox rows (single-object bytes as decided), framed for sending."""
        frame = self.framing.frame
        return [WireMessage(m.topic, m.key, frame(m.value, m.topic), m.headers) for m in rows]

    def before(self, messages: Sequence[WireMessage]) -> None:
        """Before anything reaches the producer: a fault point may fail the send, a topic outside the
        wiring is refused (a bug, never sent), each write is recorded as this service's principal."""
        self.instruments.faults.before_send(self.service)
        topics = [m.topic for m in messages]
        check_writes(self.service, topics)
        record = self.instruments.requests.record
        for topic in set(topics):
            record(self.principal, "Write", "topic", topic)

    def acknowledged(self, messages: Sequence[WireMessage]) -> None:
        for m in messages:
            counter = self._events_out.get(m.topic)
            if counter is None:
                counter = self._events_out[m.topic] = EVENTS_OUT.labels(self.service, m.topic)
            counter.inc()


@dataclass(frozen=True)
class SendBatch:
    """Outbox rows, in order, and the messages that carry them."""

    rows: list[StoredMessage]
    messages: list[WireMessage]


class OutboxRelay:
    """Sends what an outbox holds unsent, oldest first, and marks it sent once the broker acknowledged
    it. A driver loops: `batch = relay.next_batch()`, produce `batch.messages` and wait for every
    acknowledgement, `relay.sent(batch)`, until `next_batch()` is None. One relay per outbox and process
    at a time (the drivers serialise it): a row is marked sent only after its acknowledgement, so a
    crash in between sends it again, which consumers dedupe by event id."""

    def __init__(self, outbox: Outbox, side: SendSide, limit: int = 1000) -> None:
        self.outbox = outbox
        self.side = side
        self.limit = limit

    def next_batch(self) -> SendBatch | None:
        rows = self.outbox.pending(self.limit)
        if not rows:
            return None
        messages = self.side.stored(rows)
        self.side.before(messages)
        return SendBatch(rows, messages)

    def sent(self, batch: SendBatch) -> None:
        self.outbox.mark_sent(batch.rows)
        self.side.acknowledged(batch.messages)


__all__ = ["OutboxRelay", "SendBatch", "SendSide", "WireMessage"]
