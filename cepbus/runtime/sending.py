"""The send side of a service, whichever Kafka client sends: what every send goes through (the wiring
check, the fault points, the request record, the framing, the metrics) and the outbox relay.

Written once, without a client: a driver turns a `SendBatch` into produce calls and tells the relay
when the broker acknowledged it (sans-IO, so the blocking batch driver and the asyncio Faust driver
share every line that is not the client call itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cepbus.contract import codec
from cepbus.contract.headers import EVENT_TYPE_HEADER, SIGNATURE_HEADER
from cepbus.contract.statements import StatementSignature, StatementSigner
from cepbus.contract.wiring import check_writes
from cepbus.runtime.framing import Framing
from cepbus.runtime.instruments import NO_INSTRUMENTS, Instruments
from cepbus.runtime.messages import Outgoing
from cepbus.runtime.metrics import EVENTS_OUT
from cepbus.runtime.outbox import Outbox, StoredMessage
from cepbus.runtime.refusals import Undeliverable


@dataclass(frozen=True)
class WireMessage:
    """A message as the producer takes it: topic, key, framed value, headers; and the event id and
    single-object statement it carries, which a dead letter keeps should the broker refuse it."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str = ""
    statement: bytes = b""

    def undeliverable(self, reason: str) -> Undeliverable:
        event_type = next((v.decode(errors="replace") for n, v in self.headers if n == EVENT_TYPE_HEADER), "")
        return Undeliverable(
            self.event_id, event_type, self.topic, self.key, self.statement, tuple(self.headers), reason
        )


class SendSide:
    """One service's sends: framed as the bus is configured (`CEPBUS_WIRE_FORMAT`), checked against the
    wiring the ACLs are made from, recorded as its Kafka principal, counted once acknowledged."""

    def __init__(
        self,
        service: str,
        framing: Framing,
        instruments: Instruments = NO_INSTRUMENTS,
        signer: StatementSigner | None = None,
    ) -> None:
        """`signer`: the service's own key, which signs everything it sends, one signature per batch
        (`cepbus.contract.statements`); None only in unit tests of the runtime."""
        self.service = service
        self.framing = framing
        self.instruments = instruments
        self.signer = signer
        self.principal = f"cepbus-{service}"  # its KafkaUser
        self._events_out: dict[str, Any] = {}

    def outputs(self, outputs: Sequence[Outgoing]) -> list[WireMessage]:
        """Events decided but not stored (a batch route, a timer without outbox): encoded, signed,
        framed."""
        return self._signed(
            [o.topic for o in outputs],
            [o.key() for o in outputs],
            [codec.encode(o.event) for o in outputs],
            [o.headers() for o in outputs],
            [str(o.event.envelope.event_id) for o in outputs],
        )

    def stored(self, rows: Sequence[StoredMessage]) -> list[WireMessage]:
        """Outbox rows (single-object bytes as decided): signed, framed."""
        return self._signed(
            [m.topic for m in rows],
            [m.key for m in rows],
            [m.value for m in rows],
            [m.headers for m in rows],
            [m.event_id for m in rows],
        )

    def _signed(
        self,
        topics: list[str],
        keys: list[bytes | None],
        statements: list[bytes],
        headers: list[list[tuple[str, bytes]]],
        event_ids: list[str],
    ) -> list[WireMessage]:
        """One signature over the batch's single-object statements (before framing: the contract signs
        the single-object bytes whatever the framing sent), its header on each message; a message that
        already carries its author's signature (an event passed on unchanged) keeps it."""
        signatures: list[StatementSignature | None] = [None] * len(statements)
        if self.signer is not None:
            unsigned = [i for i, own in enumerate(headers) if all(n != SIGNATURE_HEADER for n, _ in own)]
            if unsigned:
                made = self.signer.sign([statements[i] for i in unsigned])
                for i, signature in zip(unsigned, made, strict=True):
                    signatures[i] = signature
        frame = self.framing.frame
        messages = []
        for topic, key, statement, own, signature, event_id in zip(
            topics, keys, statements, headers, signatures, event_ids, strict=True
        ):
            sent = own if signature is None else [*own, (SIGNATURE_HEADER, signature.header())]
            messages.append(WireMessage(topic, key, frame(statement, topic), sent, event_id, statement))
        return messages

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


#: A send's outcome when the broker took it: the position of each message refused for good, with why.
Refusals = Mapping[int, str]


class OutboxRelay:
    """Sends what an outbox holds unsent, oldest first, and marks it sent once the broker acknowledged
    it. A driver loops: `batch = relay.next_batch()`, produce `batch.messages` and wait for every
    acknowledgement, `relay.sent(batch, refused)`, until `next_batch()` is None. One relay per outbox
    and process at a time (the drivers serialise it): a row is marked sent only after its
    acknowledgement, so a crash in between sends it again, which consumers dedupe by event id.

    A row the broker refused for good (`cepbus.runtime.refusals`) is replaced, in one transaction, by
    its dead letter at the end of the outbox: no row can hold back the rows behind it."""

    def __init__(
        self,
        outbox: Outbox,
        side: SendSide,
        letters: Callable[[Undeliverable], Outgoing],
        limit: int = 1000,
    ) -> None:
        """`letters`: the dead letter that replaces a refused output (`EventProcessor.undeliverable`)."""
        self.outbox = outbox
        self.side = side
        self.letters = letters
        self.limit = limit

    def next_batch(self) -> SendBatch | None:
        rows = self.outbox.pending(self.limit)
        if not rows:
            return None
        messages = self.side.stored(rows)
        self.side.before(messages)
        return SendBatch(rows, messages)

    def sent(self, batch: SendBatch, refused: Refusals | None = None) -> None:
        """The broker took the batch: the messages in `refused` for good, the others acknowledged."""
        if refused:
            self.outbox.replace(
                [
                    (batch.rows[i], self.letters(batch.messages[i].undeliverable(reason)))
                    for i, reason in sorted(refused.items())
                ]
            )
        acked = [i for i in range(len(batch.rows)) if not refused or i not in refused]
        self.outbox.mark_sent([batch.rows[i] for i in acked] if refused else batch.rows)
        self.side.acknowledged([batch.messages[i] for i in acked] if refused else batch.messages)


__all__ = ["OutboxRelay", "Refusals", "SendBatch", "SendSide", "WireMessage"]
