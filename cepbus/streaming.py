"""The thin Faust layer every service shares: app settings, raw topics, decode -> handle -> send,
and dead letters. Services hand it plain functions `event -> outputs` that never touch Kafka.

Delivery is at least once: a crash replays events, so handlers derive output event ids from their
input (`models.derived_event_id`) and every consumer dedupes on event id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import faust
import structlog
from faust.transport.drivers import aiokafka as faust_aiokafka

from cepbus import codec
from cepbus.logs import get_logger
from cepbus.metrics import DEAD_LETTERS, EVENTS_IN, EVENTS_OUT, PROCESSING_ERRORS, PROCESSING_SECONDS
from cepbus.models import DeadLetter, Event, derived_event_id, new_envelope
from cepbus.settings import BrokerSettings, ServiceSettings, StreamSettings
from cepbus.silence import OperatorSilence
from cepbus.topics import DEAD_LETTER, TopicSpec

log = get_logger()

CORRELATION_HEADER = "cepbus-correlation-id"
EVENT_TYPE_HEADER = "cepbus-event-type"


class Rejected(Exception):
    """A well-formed event the domain refuses; it goes to the dead-letter topic with `reason`."""

    def __init__(self, reason: str, detail: str, also: Sequence[Outgoing] = ()) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.also = tuple(also)  # sent before the dead letter, e.g. the record of the refusal


@dataclass(frozen=True)
class Outgoing:
    topic: str
    event: Event

    def key(self) -> bytes | None:
        return self.event.partition_key()

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (CORRELATION_HEADER, self.event.envelope.correlation_id.encode()),
            (EVENT_TYPE_HEADER, self.event.avro_name.encode()),
        ]


@dataclass(frozen=True)
class Incoming:
    """A consumed message, as the broker delivered it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_faust(cls, message: Any) -> Incoming:
        raw = message.headers or ()
        pairs = raw.items() if isinstance(raw, Mapping) else raw
        headers = tuple((str(k), bytes(v or b"")) for k, v in pairs)
        return cls(message.topic, message.partition, message.offset, message.key, message.value, headers)

    def header(self, name: str) -> str | None:
        """A header's value as text, or None when absent or not UTF-8."""
        for key, value in self.headers:
            if key == name:
                try:
                    return value.decode()
                except UnicodeDecodeError:
                    return None
        return None


E = TypeVar("E", bound=Event)
Handler = Callable[[E], Sequence[Outgoing]]
#: Opens a store's transaction; `consume` runs a whole batch inside it (see `handle_batch`).
Transaction = Callable[[], AbstractContextManager[None]]


def _patch_fetch_max_wait(fetch_max_wait_ms: int, fetch_min_bytes: int = 1) -> None:
    """Faust hard-codes fetch_max_wait_ms=1500; on a broker that does not wake a waiting fetch
    (Tansu) that is 1.5 s of latency per fetch. Set the configured value on each new consumer,
    and `fetch_min_bytes`, which Faust does not expose (bigger fetches, fewer of them, under load)."""
    thread_cls: Any = faust_aiokafka.AIOKafkaConsumerThread
    original = getattr(thread_cls, "_cepbus_original_create", thread_cls._create_worker_consumer)

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        consumer._fetch_min_bytes = fetch_min_bytes
        return consumer

    thread_cls._cepbus_original_create = original
    thread_cls._create_worker_consumer = create_worker_consumer


def make_app(settings: ServiceSettings, broker: BrokerSettings) -> faust.App:
    _patch_fetch_max_wait(broker.fetch_max_wait_ms, broker.fetch_min_bytes)
    context = broker.ssl_context()
    return faust.App(
        settings.group_id,
        broker_credentials=faust.SSLCredentials(context) if context else None,
        broker=";".join(f"kafka://{server}" for server in broker.bootstrap_list),
        broker_session_timeout=broker.session_timeout_s,
        broker_heartbeat_interval=broker.heartbeat_interval_s,
        broker_request_timeout=broker.request_timeout_s,
        broker_commit_interval=broker.commit_interval_s,
        producer_linger_ms=broker.producer_linger_ms,
        producer_acks=-1,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        topic_partitions=broker.topic_partitions,
        topic_replication_factor=broker.replication_factor,
        web_enabled=False,
        store="memory://",
    )


class ServiceRuntime:
    """Decode, handle, dead-letter and send for one service; the only place that sees Faust."""

    def __init__(
        self,
        service: str,
        producer_org_id: str,
        app: faust.App | None = None,
        stream: StreamSettings | None = None,
    ) -> None:
        self.service = service
        self.producer_org_id = producer_org_id
        self.app = app
        self.stream = stream or StreamSettings()
        self.silence: OperatorSilence | None = None
        if app is not None:  # liveness, readiness, consumer lag and operator silence (cepbus.operations)
            from cepbus.operations import directory_silence, install_operations

            install_operations(app, service)
            self.silence = directory_silence(service)

    # -- pure part: no broker, unit-tested ------------------------------------------------------

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
        letter = DeadLetter(
            envelope=envelope,
            service=self.service,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            reason=f"{reason}: {detail}"[:2000],
            error_class=error_class,
            original_key=message.key,
            original_value=message.value,
        )
        DEAD_LETTERS.labels(self.service, reason).inc()
        PROCESSING_ERRORS.labels(self.service, reason).inc()
        log.warning(
            "dead_letter", reason=reason, detail=detail[:500], topic=message.topic, offset=message.offset
        )
        return Outgoing(DEAD_LETTER.name, letter)

    def decode(self, message: Incoming) -> Event | Outgoing:
        """The event, or the dead letter that replaces it."""
        EVENTS_IN.labels(self.service, message.topic).inc()
        try:
            event = codec.decode(message.value)
        except codec.DecodeError as exc:
            return self.dead_letter(message, exc.reason, exc.detail, "DecodeError")
        envelope = event.envelope
        if self.silence is not None:
            self.silence.seen(envelope.producer_org_id)
        # the trace of one person's path: every service logs each event it takes, with its correlation id
        log.info(
            "event_received",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            event_type=event.avro_name,
            event_id=str(envelope.event_id),
            correlation_id=message.header(CORRELATION_HEADER) or envelope.correlation_id,
        )
        return event

    def handle(self, message: Incoming, expected: type[E], handler: Handler[E]) -> list[Outgoing]:
        """Decode one message and run the handler; every failure becomes a dead letter."""
        started = time.perf_counter()
        header_correlation = message.header(CORRELATION_HEADER)
        with structlog.contextvars.bound_contextvars(
            **({"correlation_id": header_correlation} if header_correlation else {})
        ):
            decoded = self.decode(message)
        if isinstance(decoded, Outgoing):
            return [decoded]
        if not isinstance(decoded, expected):
            return [
                self.dead_letter(
                    message,
                    "unexpected_event_type",
                    f"{decoded.avro_name} on {message.topic}, which carries {expected.avro_name}",
                    "TypeError",
                )
            ]
        envelope = decoded.envelope
        with structlog.contextvars.bound_contextvars(
            event_id=str(envelope.event_id),
            correlation_id=header_correlation or envelope.correlation_id,
        ):
            try:
                outputs = list(handler(decoded))
            except Rejected as exc:
                return [*exc.also, self.dead_letter(message, exc.reason, exc.detail, "Rejected")]
            except Exception as exc:  # a bug must not block the partition: keep the message, say why
                log.exception("handler_failed")
                return [
                    self.dead_letter(
                        message, "handler_error", f"{type(exc).__name__}: {exc}", type(exc).__name__
                    )
                ]
        PROCESSING_SECONDS.labels(self.service, message.topic).observe(time.perf_counter() - started)
        return outputs

    def handle_batch(
        self,
        messages: Sequence[Incoming],
        expected: type[E],
        handler: Handler[E],
        transaction: Transaction | None = None,
    ) -> list[Outgoing]:
        """`handle` each message in order, inside one `transaction` when given: one commit (one fsync)
        per batch instead of one per event. The handlers' own transactions nest as savepoints, so a
        failing event rolls back only its own writes. Should the batch's transaction itself fail (the
        database locked or down), the batch is handled again one event at a time, as without it."""
        if transaction is None or len(messages) < 2:
            return [out for message in messages for out in self.handle(message, expected, handler)]
        try:
            with transaction():
                return [out for message in messages for out in self.handle(message, expected, handler)]
        except Exception as exc:  # rolled back: nothing of the batch is stored, handle it event by event
            PROCESSING_ERRORS.labels(self.service, "batch_transaction_failed").inc()
            log.warning("batch_transaction_failed", error=f"{type(exc).__name__}: {exc}", size=len(messages))
            return [out for message in messages for out in self.handle(message, expected, handler)]

    # -- Faust wiring ---------------------------------------------------------------------------

    def raw_topic(self, spec: TopicSpec) -> faust.TopicT:
        assert self.app is not None
        return self.app.topic(
            spec.name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    async def send(self, outgoing: Iterable[Outgoing]) -> None:
        """Hand outputs to the producer; Faust flushes the producer before committing offsets."""
        assert self.app is not None
        for item in outgoing:
            await self.app.producer.send(
                item.topic, item.key(), codec.encode(item.event), None, None, item.headers()
            )
            EVENTS_OUT.labels(self.service, item.topic).inc()

    def consume(self, spec: TopicSpec, handler: Handler[Any], transaction: Transaction | None = None) -> None:
        """Register an agent that runs `handler` on every event of `spec`, in batches (`StreamSettings`):
        a batch is handled in order (per-partition order holds), inside `transaction` if given, its
        outputs are sent in that order, and only then are its offsets acked (Faust flushes the producer
        before it commits them). A handler's failure is a dead letter, never an exception here."""
        assert self.app is not None
        within_s = self.stream.batch_within_ms / 1000.0

        async def agent(stream: faust.StreamT[bytes]) -> None:
            batches = cast("faust.Stream[bytes]", stream).take_events  # StreamT does not declare it
            async for events in batches(self.stream.batch_max, within=within_s):
                batch = [Incoming.from_faust(event.message) for event in events]
                await self.send(self.handle_batch(batch, spec.payload, handler, transaction))

        self.app.agent(self.raw_topic(spec), name=f"{self.service}.{spec.name}")(agent)
