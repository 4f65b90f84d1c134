"""Decode, handle and dead-letter, for one service: the part of the stream runtime that needs no broker.

The stream driver feeds it batches of `Incoming` messages and sends what it returns. Delivery is at
least once: a crash replays events, so handlers derive output event ids from their input
(`cepbus.contract.models.derived_event_id`) and every consumer dedupes on event id.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any, cast

import structlog

from cepbus.contract import codec, tracecontext
from cepbus.contract.headers import (
    CORRELATION_HEADER,
    REPLAY_OF_HEADER,
    SIGNATURE_HEADER,
    TRACEPARENT_HEADER,
)
from cepbus.contract.models import DeadLetter, Event, derived_event_id, new_envelope
from cepbus.contract.statements import MAX_HEADER_BYTES, statement_digest
from cepbus.contract.topics import DEAD_LETTER, core_topic
from cepbus.reference.authorship import Author, Authorship, AuthorshipError
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
from cepbus.runtime.refusals import Undeliverable
from cepbus.runtime.service import Route, Timer
from cepbus.runtime.silence import OperatorSilence
from cepbus.runtime.sqldb import is_unavailable

log = get_logger()

#: The verified author of the event being handled (a handler that needs its signer reads it here).
CURRENT_AUTHOR: contextvars.ContextVar[Author | None] = contextvars.ContextVar("cepbus_author", default=None)

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


def _bounded_correlation(header: str | None) -> str | None:
    """A message's correlation header if it can be an envelope's (1 to 128 printable characters): a
    junk message's own header must never keep its dead letter from being built."""
    if header and len(header) <= 128 and header.isprintable():
        return header
    return None


def _keeps_nothing(statement: bytes) -> bool:
    """A dead letter that already keeps no original (nothing smaller can replace it)."""
    try:
        letter = codec.decode(statement)
    except codec.DecodeError:
        return False
    return isinstance(letter, DeadLetter) and not letter.original_value


class LettersRefused(RuntimeError):
    """The broker refused a dead letter that keeps no original: a misconfigured broker, not a message."""


class EventProcessor:
    """Turns consumed messages into outputs for one service; every failure becomes a dead letter."""

    def __init__(
        self,
        service: str,
        producer_org_id: str,
        silence: OperatorSilence | None = None,
        *,
        max_message_bytes: int = 1_000_000,
        authorship: Authorship | None = None,
    ) -> None:
        """`authorship`: the signed directory's judgement of who said what; every service runs with it
        (None only in unit tests of the processing itself)."""
        self.service = service
        self.producer_org_id = producer_org_id
        self.silence = silence
        self.authorship = authorship
        self.max_message_bytes = max_message_bytes
        # label children per topic, looked up once (prometheus_client's labels() costs microseconds)
        self._events_in: dict[str, Any] = {}
        self._processing_seconds: dict[str, Any] = {}

    def dead_letter(
        self,
        message: Incoming,
        reason: str,
        detail: str,
        error_class: str,
        *,
        position: str | None = None,
        keep_original: bool = True,
    ) -> Outgoing:
        """A dead letter keeping the original bytes; its id is derived from the message's position (or
        `position`), so the same poison message redelivered yields the same dead letter."""
        position = position or f"{message.topic}/{message.partition}/{message.offset}"
        event_id = derived_event_id(position, f"dead-letter:{self.service}")
        envelope = new_envelope(
            DeadLetter,
            producer_org_id=self.producer_org_id,
            event_id=event_id,
            correlation_id=_bounded_correlation(message.header(CORRELATION_HEADER)) or str(event_id),
        )
        if keep_original:
            key, value, truncated = bounded_original(message.key, message.value, self.max_message_bytes)
        else:
            key, value, truncated = message.key, b"", True
        signature = message.raw_header(SIGNATURE_HEADER)
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
            original_signature=signature if signature and len(signature) <= MAX_HEADER_BYTES else None,
        )
        DEAD_LETTERS.labels(self.service, reason).inc()
        PROCESSING_ERRORS.labels(self.service, reason).inc()
        log.warning(
            "dead_letter", reason=reason, detail=detail[:500], topic=message.topic, offset=message.offset
        )
        return Outgoing(DEAD_LETTER.name, letter, tracecontext.parse(message.header(TRACEPARENT_HEADER)))

    def undeliverable(self, refused: Undeliverable) -> Outgoing:
        """The dead letter that replaces an output the broker refused for good (too large, invalid):
        sent in its place, so the route and the outbox behind it go on. Its id derives from the output's
        event id. A refused dead letter is replaced by one that keeps only its digest and size, which
        always fits."""
        letter_refused = refused.topic == DEAD_LETTER.name
        if letter_refused and _keeps_nothing(refused.statement):
            # a dead letter that keeps no original was refused: the broker refuses what any letter is,
            # no replacement would fare better. An error, retried and logged, until the broker is fixed.
            raise LettersRefused(
                f"the broker refuses a dead letter of {len(refused.statement)} bytes ({refused.reason}): "
                "its message size limit is below the bus's (CEPBUS_BROKER_MAX_MESSAGE_BYTES)"
            )
        return self.dead_letter(
            Incoming(refused.topic, -1, -1, refused.key, refused.statement, refused.headers),
            "output_refused",
            f"{refused.event_type} {refused.event_id} to {refused.topic}: {refused.reason}",
            "OutputRefused",
            position=f"output/{refused.event_id}",
            keep_original=not letter_refused,
        )

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
                correlation_id=_bounded_correlation(message.header(CORRELATION_HEADER))
                or envelope.correlation_id,
                traceparent=message.header(TRACEPARENT_HEADER),
            )
        return event

    def decode_expected(self, message: Incoming, expected: type[Event]) -> Received | Outgoing:
        """The event and its author if it is of the type the route takes and its author's word, else its
        dead letter: nothing reaches a handler before its signature and attribution are checked."""
        header_correlation = _bounded_correlation(message.header(CORRELATION_HEADER))
        with structlog.contextvars.bound_contextvars(
            **({"correlation_id": header_correlation} if header_correlation else {})
        ):
            decoded = self.decode(message)
        if isinstance(decoded, Outgoing):
            return decoded
        if not isinstance(decoded, expected):
            return self.dead_letter(
                message,
                "unexpected_event_type",
                f"{decoded.avro_name} on {message.topic}, which carries {expected.avro_name}",
                "TypeError",
            )
        if self.authorship is None:
            return Received(message, decoded)
        try:
            author = self.authorship.verify(
                codec.single_object(message.value), message.raw_header(SIGNATURE_HEADER)
            )
            self.authorship.judge(decoded, author, core_topic(message.topic))
        except AuthorshipError as exc:
            return self.dead_letter(message, exc.reason, exc.detail, "AuthorshipError")
        return Received(message, decoded, author)

    def _run(self, message: Incoming, expected: type[Event], handler: Handler[Any]) -> list[Outgoing]:
        """Decode and handle one message; a refusal becomes its dead letter, other exceptions propagate."""
        started = time.perf_counter()
        received = self.decode_expected(message, expected)
        if isinstance(received, Outgoing):
            return [received]
        decoded = received.event
        envelope = decoded.envelope
        # the trace it came in (a valid `traceparent`), else a new one started here: what it derives
        # carries it on (Outgoing reads tracecontext.CURRENT), and its log lines name it
        # (cepbus.runtime.logs.add_trace_context)
        trace = tracecontext.parse(message.header(TRACEPARENT_HEADER)) or tracecontext.new_trace(
            envelope.event_id
        )
        token = tracecontext.CURRENT.set(trace)
        author_token = CURRENT_AUTHOR.set(received.author)
        try:
            with structlog.contextvars.bound_contextvars(
                event_id=str(envelope.event_id),
                correlation_id=_bounded_correlation(message.header(CORRELATION_HEADER))
                or envelope.correlation_id,
            ):
                try:
                    outputs = list(handler(decoded))
                except Rejected as exc:
                    return [*exc.also, self.dead_letter(message, exc.reason, exc.detail, "Rejected")]
        finally:
            tracecontext.CURRENT.reset(token)
            CURRENT_AUTHOR.reset(author_token)
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
                received.append(decoded)
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


def forwarded(topic: str, event: Event) -> Outgoing:
    """`event`, the one being handled, passed on unchanged to `topic` (an inbox) with its author's own
    signature: whoever reads it verifies the author's word, not the forwarder's. Signed by this service
    instead should its bytes differ from what the author signed (never for an event passed on as is)."""
    author = CURRENT_AUTHOR.get()
    if author is not None and statement_digest(codec.encode(event)) == author.digest:
        return Outgoing(topic, event, signature=author.signature.header())
    return Outgoing(topic, event)


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


__all__ = [
    "CURRENT_AUTHOR",
    "EventProcessor",
    "LettersRefused",
    "forwarded",
    "timer_decisions",
    "timer_failed",
]
