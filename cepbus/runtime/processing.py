"""Decode, handle and dead-letter, for one service: the part of the stream runtime that needs no broker.

The stream driver feeds it batches of `Incoming` messages and sends what it returns. Delivery is at
least once: a crash replays events, so handlers derive output event ids from their input
(`cepbus.contract.models.derived_event_id`) and every consumer dedupes on event id.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any, cast

import structlog

from cepbus.contract import codec, tracecontext
from cepbus.contract.headers import CORRELATION_HEADER, REPLAY_OF_HEADER, TRACEPARENT_HEADER
from cepbus.contract.models import DeadLetter, Event, derived_event_id, new_envelope
from cepbus.contract.topics import DEAD_LETTER
from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import (
    BatchHandler,
    Handler,
    Incoming,
    Outgoing,
    Received,
    Refusal,
    Rejected,
    Transaction,
)
from cepbus.runtime.metrics import DEAD_LETTERS, EVENTS_IN, PROCESSING_ERRORS, PROCESSING_SECONDS
from cepbus.runtime.outbox import Outbox
from cepbus.runtime.service import Route, Timer
from cepbus.runtime.silence import OperatorSilence
from cepbus.runtime.sqldb import is_unavailable

log = get_logger()

#: Room kept in a dead letter for its envelope, reason (at most 2,000 characters) and other fields.
DEAD_LETTER_OVERHEAD_BYTES = 16_384
#: What a dead letter keeps of an original too big to fit whole beside that overhead.
OVERSIZE_PREFIX_BYTES = 65_536


def bounded_original(
    key: bytes | None, value: bytes, max_message_bytes: int
) -> tuple[bytes | None, bytes, bool]:
    """The original key and value as a dead letter keeps them: whole when they fit in a message of
    `max_message_bytes` beside the dead letter's own fields, else a prefix (the digest and size of
    the whole go beside it), so that the dead letter itself can always be sent."""
    room = max_message_bytes - DEAD_LETTER_OVERHEAD_BYTES
    if len(value) + len(key or b"") <= room:
        return key, value, False
    kept_key = None if key is None else key[:1024]
    return kept_key, value[: min(OVERSIZE_PREFIX_BYTES, room // 2)], True


class EventProcessor:
    """Turns consumed messages into outputs for one service; every failure becomes a dead letter."""

    def __init__(
        self,
        service: str,
        producer_org_id: str,
        silence: OperatorSilence | None = None,
        *,
        max_message_bytes: int = 1_000_000,
    ) -> None:
        self.service = service
        self.producer_org_id = producer_org_id
        self.silence = silence
        self.max_message_bytes = max_message_bytes
        # label children per topic, looked up once (prometheus_client's labels() costs microseconds)
        self._events_in: dict[str, Any] = {}
        self._processing_seconds: dict[str, Any] = {}

    def dead_letter(self, message: Incoming, reason: str, detail: str, error_class: str) -> Outgoing:
        """A dead letter keeping the original bytes; its id is derived from the message's position,
        so the same poison message redelivered yields the same dead letter."""
        position = f"{message.topic}/{message.partition}/{message.offset}"
        event_id = derived_event_id(position, f"dead-letter:{self.service}")
        envelope = new_envelope(
            DeadLetter,
            producer_org_id=self.producer_org_id,
            event_id=event_id,
            correlation_id=message.header(CORRELATION_HEADER) or str(event_id),
        )
        key, value, truncated = bounded_original(message.key, message.value, self.max_message_bytes)
        letter = DeadLetter(
            envelope=envelope,
            service=self.service,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            reason=f"{reason}: {detail}"[:2000],
            error_class=error_class,
            original_key=key,
            original_value=value,
            original_truncated=truncated,
            original_sha256=hashlib.sha256(message.value).hexdigest(),
            original_size=len(message.value),
            replay_of=message.header(REPLAY_OF_HEADER),
        )
        DEAD_LETTERS.labels(self.service, reason).inc()
        PROCESSING_ERRORS.labels(self.service, reason).inc()
        log.warning(
            "dead_letter", reason=reason, detail=detail[:500], topic=message.topic, offset=message.offset
        )
        return Outgoing(DEAD_LETTER.name, letter, tracecontext.parse(message.header(TRACEPARENT_HEADER)))

    def decode(self, message: Incoming) -> Event | Outgoing:
        """The event, or the dead letter that replaces it."""
        counter = self._events_in.get(message.topic)
        if counter is None:
            counter = self._events_in[message.topic] = EVENTS_IN.labels(self.service, message.topic)
        counter.inc()
        try:
            event = codec.decode(message.value)
        except codec.DecodeError as exc:
            return self.dead_letter(message, exc.reason, exc.detail, "DecodeError")
        envelope = event.envelope
        if self.silence is not None:
            self.silence.seen(envelope.producer_org_id)
        # the trace of one person's path: every service logs each event it takes, with its correlation id,
        # at debug level (CEPBUS_LOG_LEVEL=debug): one line per event costs more than handling most events
        if log.is_enabled_for(logging.DEBUG):
            log.debug(
                "event_received",
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                event_type=event.avro_name,
                event_id=str(envelope.event_id),
                correlation_id=message.header(CORRELATION_HEADER) or envelope.correlation_id,
                traceparent=message.header(TRACEPARENT_HEADER),
            )
        return event

    def decode_expected(self, message: Incoming, expected: type[Event]) -> Event | Outgoing:
        """The event if it is of the type the route takes, else its dead letter."""
        header_correlation = message.header(CORRELATION_HEADER)
        with structlog.contextvars.bound_contextvars(
            **({"correlation_id": header_correlation} if header_correlation else {})
        ):
            decoded = self.decode(message)
        if isinstance(decoded, Outgoing | expected):
            return decoded
        return self.dead_letter(
            message,
            "unexpected_event_type",
            f"{decoded.avro_name} on {message.topic}, which carries {expected.avro_name}",
            "TypeError",
        )

    def _run(self, message: Incoming, expected: type[Event], handler: Handler[Any]) -> list[Outgoing]:
        """Decode and handle one message; a refusal becomes its dead letter, other exceptions propagate."""
        started = time.perf_counter()
        decoded = self.decode_expected(message, expected)
        if isinstance(decoded, Outgoing):
            return [decoded]
        envelope = decoded.envelope
        # the trace it came in (a valid `traceparent`), else a new one started here: what it derives
        # carries it on (Outgoing reads tracecontext.CURRENT), and its log lines name it
        # (cepbus.runtime.logs.add_trace_context)
        trace = tracecontext.parse(message.header(TRACEPARENT_HEADER)) or tracecontext.new_trace(
            envelope.event_id
        )
        token = tracecontext.CURRENT.set(trace)
        try:
            with structlog.contextvars.bound_contextvars(
                event_id=str(envelope.event_id),
                correlation_id=message.header(CORRELATION_HEADER) or envelope.correlation_id,
            ):
                try:
                    outputs = list(handler(decoded))
                except Rejected as exc:
                    return [*exc.also, self.dead_letter(message, exc.reason, exc.detail, "Rejected")]
        finally:
            tracecontext.CURRENT.reset(token)
        histogram = self._processing_seconds.get(message.topic)
        if histogram is None:
            histogram = PROCESSING_SECONDS.labels(self.service, message.topic)
            self._processing_seconds[message.topic] = histogram
        histogram.observe(time.perf_counter() - started)
        return outputs

    def _failed(self, message: Incoming, exc: Exception) -> list[Outgoing]:
        """A handler's failure: infrastructure (its database unavailable) propagates, so the driver
        retries the batch and acks nothing; anything else is a bug in the handler or an event it cannot
        take, dead-lettered so the partition goes on."""
        if is_unavailable(exc):
            raise exc
        log.exception("handler_failed")
        return [
            self.dead_letter(message, "handler_error", f"{type(exc).__name__}: {exc}", type(exc).__name__)
        ]

    def handle(self, message: Incoming, expected: type[Event], handler: Handler[Any]) -> list[Outgoing]:
        """Decode one message and run the handler; a refusal or a bug becomes a dead letter, an
        unavailable database an exception (`cepbus.runtime.sqldb.is_unavailable`)."""
        try:
            return self._run(message, expected, handler)
        except Exception as exc:
            return self._failed(message, exc)

    def handle_batch(
        self,
        messages: Sequence[Incoming],
        expected: type[Event],
        handler: Handler[Any],
        transaction: Transaction | None = None,
        outbox: Outbox | None = None,
    ) -> list[Outgoing]:
        """`handle` each message in order, inside one `transaction` when given (one commit, one fsync,
        per batch). Should a handler fail (a bug, not a refusal), the batch is rolled back and run again
        with each event in a savepoint of its own, so the failing event loses only its own writes, while
        a refusal keeps what the handler recorded of it (metrics of the first pass count twice then).
        With an `outbox`, the outputs are stored in the same transaction (the first decision for an
        event id stays): the driver then sends what the outbox holds. An unavailable database
        propagates: nothing of the batch is stored, and the driver retries it without acking."""
        if transaction is None:
            return [out for message in messages for out in self.handle(message, expected, handler)]
        try:  # the common case, every handler returns or refuses: no savepoint per event
            with transaction():
                outputs = [out for message in messages for out in self._run(message, expected, handler)]
                if outbox is not None:
                    outbox.add(outputs)
            return outputs
        except Exception as exc:
            if is_unavailable(exc):
                raise
            # A handler failed: the whole transaction is rolled back; again, each event in a savepoint of
            # its own, so that only the failing one loses its writes and becomes a dead letter.
        outputs = []
        with transaction():
            for message in messages:
                try:
                    with transaction():  # a savepoint
                        outputs += self._run(message, expected, handler)
                except Exception as exc:
                    outputs += self._failed(message, exc)
            if outbox is not None:
                outbox.add(outputs)
        return outputs

    def split_batch(
        self, messages: Sequence[Incoming], expected: type[Event]
    ) -> tuple[list[Received], list[Outgoing]]:
        """For a batch handler: the messages that decode to `expected`, and the dead letters of the rest.
        Decoding once, the driver can retry the handler alone when its store is unavailable."""
        letters: list[Outgoing] = []
        received: list[Received] = []
        for message in messages:
            decoded = self.decode_expected(message, expected)
            if isinstance(decoded, Outgoing):
                letters.append(decoded)
            else:
                received.append(Received(message, decoded))
        return received, letters

    def refused(self, decided: Sequence[Outgoing | Refusal]) -> list[Outgoing]:
        """A batch handler's decisions with each refusal turned into its dead letter."""
        return [
            self.dead_letter(out.message, out.reason, out.detail, "Refused")
            if isinstance(out, Refusal)
            else out
            for out in decided
        ]

    def decide(self, route: Route, batch: Sequence[Incoming]) -> list[Outgoing]:
        """What `route` decides for `batch`, the events to send in order (with a route outbox, also stored
        in it). An unavailable store raises: the driver retries the whole call, acking nothing."""
        if not route.whole_batch:
            handler = cast("Handler[Any]", route.handler)
            return self.handle_batch(batch, route.accepts, handler, route.transaction, route.outbox)
        received, letters = self.split_batch(batch, route.accepts)
        batch_handler = cast("BatchHandler", route.handler)
        decided = batch_handler(received) if received else []
        return [*self.refused(decided), *letters]


def timer_decisions(timer: Timer) -> list[Outgoing]:
    """What a timer's tick decides. With an outbox, the tick runs inside the timer's transaction and its
    events are stored with what it recorded: the driver then relays the outbox (and sends nothing from
    here); without, the driver sends what this returns and tells `timer.sent` once acknowledged."""
    if timer.outbox is not None and timer.transaction is not None:
        with timer.transaction():
            timer.outbox.add(list(timer.tick()))
        return []
    return list(timer.tick())


def timer_failed(service: str, timer: Timer, exc: Exception) -> None:
    """A tick that failed is retried at the next one: what it decided is stored or decided again."""
    PROCESSING_ERRORS.labels(service, f"timer_{timer.name}_failed").inc()
    log.error("timer_failed", timer=timer.name, error=f"{type(exc).__name__}: {exc}")


__all__ = ["EventProcessor", "timer_decisions", "timer_failed"]
