"""The Faust stream driver: runs a `ServiceDefinition` as a Faust app (raw topics, agents that take
batches, timers, start tasks, and the operations side: health, lag, silence).

This is the only module of the runtime that sees Faust. A route's agent takes a batch
(`StreamSettings`), handles it in order (per-partition order holds), sends the outputs in that order,
and only then are its offsets acked (Faust flushes the producer before it commits them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from cepbus.contract import codec
from cepbus.contract.topics import TopicSpec
from cepbus.contract.wiring import check_reads, check_writes
from cepbus.runtime import faults, traffic
from cepbus.runtime.health import HEALTH
from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import BatchHandler, Handler, Incoming, Outgoing, Refusal
from cepbus.runtime.metrics import BATCHES_RETRIED, EVENTS_OUT, PROCESSING_ERRORS, ROUTE_BLOCKED
from cepbus.runtime.operations import directory_silence, install_operations
from cepbus.runtime.outbox import Outbox
from cepbus.runtime.processing import EventProcessor
from cepbus.runtime.service import Route, ServiceDefinition, Timer
from cepbus.runtime.settings import BrokerSettings, ServiceSettings, StreamSettings
from cepbus.runtime.wire import Wire

log = get_logger()
_T = TypeVar("_T")

#: Backoff bounds when a batch handler's store is unavailable (the batch is retried, never acked).
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0


def incoming_from_faust(message: Any) -> Incoming:
    raw = message.headers or ()
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    headers = tuple((str(k), bytes(v or b"")) for k, v in pairs)
    return Incoming(message.topic, message.partition, message.offset, message.key, message.value, headers)


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


class FaustDriver:
    """One service's Faust app: its routes as agents, its timers, its start tasks."""

    def __init__(
        self,
        definition: ServiceDefinition,
        broker: BrokerSettings | None = None,
        stream: StreamSettings | None = None,
        *,
        operations: bool = True,
    ) -> None:
        check_reads(definition.name, definition.topics_read())  # the wiring the ACLs are made from
        self._principal = f"cepbus-{definition.name}"  # its KafkaUser (cepbus.runtime.traffic)
        group = definition.settings.group_id
        for topic in definition.topics_read():
            traffic.record(self._principal, "Read", "topic", topic)
        traffic.record(self._principal, "Read", "group", group)
        # Faust keeps its partition assignor's state in a topic of its own, which it creates
        for operation in ("Create", "Write", "Read"):
            traffic.record(self._principal, operation, "topic", f"{group}-__assignor-__leader")
        self.definition = definition
        self.stream = stream or StreamSettings()
        broker = broker or BrokerSettings()
        self.wire = Wire.from_settings(broker)  # the framing it sends (CEPBUS_WIRE_FORMAT)
        self.app = make_app(definition.settings, broker)
        silence = None
        if operations:  # liveness, readiness, consumer lag and operator silence (cepbus.runtime.operations)
            install_operations(self.app, definition.name)
            if definition.silence_seed is not None:  # the service whose stores remember it
                silence = directory_silence(definition.name)
                silence.seed(definition.silence_seed())
        self.processor = EventProcessor(
            definition.name,
            definition.producer_org_id,
            silence,
            max_message_bytes=broker.max_message_bytes,
        )
        self._relay_locks: dict[int, asyncio.Lock] = {}
        for item in definition.routes:
            self._agent(item)
        for timer in definition.timers:
            self._timer(timer)
        self._relay_timer()
        for hook in definition.on_start:
            self._start_task(hook)

    def raw_topic(self, specs: Sequence[TopicSpec]) -> faust.TopicT:
        return self.app.topic(
            *(spec.name for spec in specs),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    async def send(self, outgoing: Iterable[Outgoing]) -> None:
        """Hand outputs to the producer, in order, and wait until the broker acknowledged them all."""
        faults.before_send(self.definition.name)
        outgoing = list(outgoing)
        check_writes(self.definition.name, [item.topic for item in outgoing])
        for item in outgoing:
            traffic.record(self._principal, "Write", "topic", item.topic)
        futures = []
        for item in outgoing:
            futures.append(
                await self.app.producer.send(
                    item.topic,
                    item.key(),
                    self.wire.frame(codec.encode(item.event), item.topic),
                    None,
                    None,
                    item.headers(),
                )
            )
            EVENTS_OUT.labels(self.definition.name, item.topic).inc()
        await asyncio.gather(*futures)

    async def relay(self, outbox: Outbox) -> int:
        """Send what the outbox holds unsent, in order; mark it sent once the broker acknowledged it.
        One relay at a time per outbox (routes and timers share one), so nothing is sent twice here."""
        lock = self._relay_locks.setdefault(id(outbox), asyncio.Lock())
        async with lock:
            return await self._relay_locked(outbox)

    async def _relay_locked(self, outbox: Outbox) -> int:
        sent = 0
        while pending := outbox.pending():
            faults.before_send(self.definition.name)
            check_writes(self.definition.name, [m.topic for m in pending])
            for m in pending:
                traffic.record(self._principal, "Write", "topic", m.topic)
            futures = [
                await self.app.producer.send(
                    m.topic, m.key, self.wire.frame(m.value, m.topic), None, None, m.headers
                )
                for m in pending
            ]
            await asyncio.gather(*futures)
            outbox.mark_sent(pending)
            for m in pending:
                EVENTS_OUT.labels(self.definition.name, m.topic).inc()
            sent += len(pending)
        return sent

    async def _until_done(self, what: str, work: Callable[[], list[Outgoing]]) -> list[Outgoing]:
        """Run `work` until it returns; while its database is unavailable (or a batch handler fails),
        retry with backoff. Faust acks the batch's offsets only once this returns: nothing is lost,
        nothing valid is dead-lettered because something else was down."""

        async def attempt() -> list[Outgoing]:
            return work()

        return await self._retrying(what, attempt)

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Await `attempt()` until it succeeds. Meanwhile the agent takes nothing more (its partitions
        wait), the route shows as blocked (metric and readiness), and the delay doubles up to a cap."""
        delay = RETRY_FIRST_S
        try:
            while True:
                try:
                    return await attempt()
                except Exception as exc:
                    PROCESSING_ERRORS.labels(self.definition.name, "store_unavailable").inc()
                    BATCHES_RETRIED.labels(self.definition.name, what).inc()
                    ROUTE_BLOCKED.labels(self.definition.name, what).set(1)
                    HEALTH.blocked = f"{what}: {type(exc).__name__}: {exc}"[:300]
                    log.error(
                        "batch_retry", route=what, error=f"{type(exc).__name__}: {exc}", retry_in_s=delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
        finally:
            if HEALTH.blocked is not None and HEALTH.blocked.startswith(f"{what}:"):
                HEALTH.blocked = None
                ROUTE_BLOCKED.labels(self.definition.name, what).set(0)

    def _agent(self, item: Route) -> None:
        batch_max = item.batch_max or self.stream.batch_max
        within_s = (item.batch_within_ms or self.stream.batch_within_ms) / 1000.0

        async def agent(stream: faust.StreamT[bytes]) -> None:
            batches = cast("faust.Stream[bytes]", stream).take_events  # StreamT does not declare it
            async for events in batches(batch_max, within=within_s):
                batch = [incoming_from_faust(event.message) for event in events]
                if item.whole_batch:
                    outputs = await self._handle_whole_batch(batch, item)
                else:
                    handler = cast("Handler[Any]", item.handler)
                    outputs = await self._until_done(
                        item.name, partial(self._handle_batch, batch, item, handler)
                    )
                faults.reached(self.definition.name, faults.AFTER_COMMIT)
                outbox = item.outbox
                if outbox is not None:  # the stored decisions, acknowledged before the offsets are
                    await self._retrying(item.name, partial(self.relay, outbox))
                else:
                    await self._retrying(item.name, partial(self.send, outputs))

        self.app.agent(self.raw_topic(item.topics), name=f"{self.definition.name}.{item.name}")(agent)

    def _handle_batch(self, batch: Sequence[Incoming], item: Route, handler: Handler[Any]) -> list[Outgoing]:
        return self.processor.handle_batch(batch, item.accepts, handler, item.transaction, item.outbox)

    async def _handle_whole_batch(self, batch: Sequence[Incoming], item: Route) -> list[Outgoing]:
        received, letters = self.processor.split_batch(batch, item.accepts)
        if not received:
            return letters
        handler = cast("BatchHandler", item.handler)
        decided = await self._until_done(item.name, lambda: list(handler(received)))  # type: ignore[arg-type]
        outputs = [
            self.processor.dead_letter(out.message, out.reason, out.detail, "Refused")
            if isinstance(out, Refusal)
            else out
            for out in cast("list[Outgoing | Refusal]", decided)
        ]
        return [*outputs, *letters]

    def _timer(self, timer: Timer) -> None:
        async def tick() -> None:
            try:
                if timer.outbox is not None and timer.transaction is not None:
                    transaction, outbox = timer.transaction, timer.outbox

                    def decide() -> list[Outgoing]:
                        with transaction():
                            due = list(timer.tick())
                            outbox.add(due)
                        return due

                    decide()
                    await self.relay(outbox)
                    return
                due = list(timer.tick())
                if due:
                    await self.send(due)
                    if timer.sent is not None:
                        timer.sent(due)
            except Exception as exc:  # retried at the next tick: what the tick decided is stored
                PROCESSING_ERRORS.labels(self.definition.name, f"timer_{timer.name}_failed").inc()
                log.error("timer_failed", timer=timer.name, error=f"{type(exc).__name__}: {exc}")

        app: Any = self.app  # Faust's decorators are untyped
        app.timer(interval=timer.interval_s, name=f"{self.definition.name}.{timer.name}")(tick)

    def _relay_timer(self) -> None:
        """Every second, what a crash or a failed send left in the outboxes goes out."""
        outboxes = self.definition.outboxes()
        if not outboxes:
            return

        async def relay_all() -> None:
            for outbox in outboxes:
                try:
                    await self.relay(outbox)
                except Exception as exc:  # the broker or the database away: the next tick retries
                    log.warning("outbox_relay_failed", error=f"{type(exc).__name__}: {exc}")

        app: Any = self.app
        app.timer(interval=1.0, name=f"{self.definition.name}.outbox_relay")(relay_all)

    def _start_task(self, hook: Any) -> None:
        async def start() -> None:
            hook()

        self.app.task(start)


__all__ = ["FaustDriver", "incoming_from_faust", "make_app"]
