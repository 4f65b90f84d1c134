"""The Faust stream driver (`CEPBUS_RUNTIME=faust`): runs a `ServiceDefinition` as a Faust app, a thin
adapter over the runtime core (`processing`, `sending`, `retry`, `operations`, `client_config`).

This is the only module of the runtime that sees Faust, and only `runner.py` imports it, when that
runtime is chosen. A route's agent takes a batch (`StreamSettings`), decides it in order (per-partition
order holds), sends the outputs in that order, and only then are its offsets acked (Faust flushes the
producer before it commits them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from cepbus.contract.topics import TopicSpec
from cepbus.contract.wiring import check_reads
from cepbus.runtime.client_config import faust_app_options, ssl_context
from cepbus.runtime.framing import Framing
from cepbus.runtime.health import HEALTH, HealthState
from cepbus.runtime.instruments import AFTER_COMMIT, NO_INSTRUMENTS, Instruments
from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import Incoming, Outgoing
from cepbus.runtime.operations import Operations, directory_silence
from cepbus.runtime.outbox import Outbox
from cepbus.runtime.processing import EventProcessor, timer_decisions, timer_failed
from cepbus.runtime.refusals import permanent_refusal
from cepbus.runtime.retry import RouteRetry
from cepbus.runtime.sending import OutboxRelay, Refusals, SendSide, WireMessage
from cepbus.runtime.service import Route, ServiceDefinition, Timer
from cepbus.runtime.settings import BrokerSettings, ServiceSettings, StreamSettings

log = get_logger()
_T = TypeVar("_T")
RELAY_EVERY_S = 1.0


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
    context = ssl_context(broker)
    options = faust_app_options(settings, broker)
    Path(options["datadir"]).parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    return faust.App(
        settings.group_id,
        broker_credentials=faust.SSLCredentials(context) if context else None,
        **options,
    )


def _permanent(exc: BaseException) -> str:
    """The reason the broker refused a record for good; any other failure propagates (retried)."""
    reason = permanent_refusal(getattr(exc, "errno", None), f"{type(exc).__name__}: {exc}")
    if reason is None:
        raise exc
    return reason


class FaustDriver:
    """One service's Faust app: its routes as agents, its timers, its start tasks, its operations."""

    def __init__(
        self,
        definition: ServiceDefinition,
        broker: BrokerSettings | None = None,
        stream: StreamSettings | None = None,
        *,
        instruments: Instruments = NO_INSTRUMENTS,
        health: HealthState = HEALTH,
        operations: Operations | None = None,
    ) -> None:
        check_reads(definition.name, definition.topics_read())  # the wiring the ACLs are made from
        self.definition = definition
        self.name = definition.name
        self.stream = stream or StreamSettings()
        broker = broker or BrokerSettings()
        group = definition.settings.group_id
        self.instruments = instruments
        self.operations = operations or Operations(
            self.name, group, broker, health=health, instruments=instruments
        )
        self.operations.subscribed(definition.topics_read())
        # Faust keeps its partition assignor's state in a topic of its own, which it creates
        for operation in ("Create", "Write", "Read"):
            instruments.requests.record(
                self.operations.principal, operation, "topic", f"{group}-__assignor-__leader"
            )
        self.app = make_app(definition.settings, broker)
        silence = None
        if definition.silence_seed is not None:  # the service whose stores remember it
            silence = directory_silence(self.name)
            silence.seed(definition.silence_seed())
        self.processor = EventProcessor(
            self.name,
            definition.producer_org_id,
            silence,
            max_message_bytes=broker.max_message_bytes,
            authorship=definition.authorship,
        )
        self.side = SendSide(self.name, Framing.from_settings(broker), instruments, definition.signer)
        self._relays = {
            id(outbox): OutboxRelay(outbox, self.side, self.processor.undeliverable)
            for outbox in definition.outboxes()
        }
        self._relay_locks: dict[int, asyncio.Lock] = {}
        self._retries = {r.name: RouteRetry(self.name, r.name, health) for r in definition.routes}
        self._install_operations()
        for item in definition.routes:
            self._agent(item)
        for timer in definition.timers:
            self._timer(timer)
        self._relay_timer()
        for hook in definition.on_start:
            self._start_task(hook)

    # -- sending ---------------------------------------------------------------------------------------

    async def transmit(self, messages: Sequence[WireMessage]) -> Refusals:
        """Hand the messages to the producer in order and wait until the broker took them all: the ones
        it refused for good, by position; any other failure raises (an outage: the send is retried)."""
        refused: dict[int, str] = {}
        pending: list[tuple[int, Awaitable[Any]]] = []
        for index, m in enumerate(messages):
            try:
                pending.append(
                    (index, await self.app.producer.send(m.topic, m.key, m.value, None, None, m.headers))
                )
            except Exception as exc:  # refused before it left (larger than max_request_size)
                refused[index] = _permanent(exc)
        outcomes = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
        for (index, _), outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                refused[index] = _permanent(outcome)
        return refused

    async def send(self, outputs: Sequence[Outgoing]) -> None:
        """Send decided events that no outbox holds; one the broker refuses for good is replaced by its
        dead letter, sent in its place."""
        while outputs:
            messages = self.side.outputs(outputs)
            self.side.before(messages)
            refused = await self.transmit(messages)
            self.side.acknowledged([m for i, m in enumerate(messages) if i not in refused])
            outputs = [self.processor.undeliverable(messages[i].undeliverable(r)) for i, r in refused.items()]

    async def relay(self, outbox: Outbox) -> int:
        """Send what the outbox holds unsent, in order; mark it sent once the broker acknowledged it.
        One relay at a time per outbox (routes and timers share one), so nothing is sent twice here."""
        relay = self._relays.get(id(outbox)) or self._relays.setdefault(
            id(outbox), OutboxRelay(outbox, self.side, self.processor.undeliverable)
        )
        sent = 0
        async with self._relay_locks.setdefault(id(outbox), asyncio.Lock()):
            while (batch := relay.next_batch()) is not None:
                relay.sent(batch, await self.transmit(batch.messages))
                sent += len(batch.rows)
        return sent

    async def _retrying(self, route: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Await `attempt()` until it succeeds. Meanwhile the agent takes nothing more (its partitions
        wait), the route shows as blocked (metric and readiness), and the delay doubles up to a cap."""
        retry = self._retries[route]
        try:
            while True:
                try:
                    return await attempt()
                except Exception as exc:
                    await asyncio.sleep(retry.failed(exc))
        finally:
            retry.cleared()

    # -- routes, timers, tasks -------------------------------------------------------------------------

    def raw_topic(self, specs: Sequence[TopicSpec]) -> faust.TopicT:
        return self.app.topic(
            *(spec.name for spec in specs),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    def _agent(self, route: Route) -> None:
        batch_max = route.batch_max or self.stream.batch_max
        within_s = (route.batch_within_ms or self.stream.batch_within_ms) / 1000.0

        async def agent(stream: faust.StreamT[bytes]) -> None:
            batches = cast("faust.Stream[bytes]", stream).take_events  # StreamT does not declare it
            async for events in batches(batch_max, within=within_s):
                await self._take(route, [incoming_from_faust(event.message) for event in events])

        self.app.agent(self.raw_topic(route.topics), name=f"{self.name}.{route.name}")(agent)

    async def _take(self, route: Route, batch: list[Incoming]) -> None:
        """Decide the batch, then send what it decided; each step retried while its store or the broker
        is away. Faust acks the batch's offsets only once this returns."""

        async def decide() -> list[Outgoing]:
            return self.processor.decide(route, batch)

        outputs = await self._retrying(route.name, decide)
        self.instruments.faults.reached(self.name, AFTER_COMMIT)
        outbox = route.outbox
        if outbox is not None:  # the stored decisions, acknowledged before the offsets are
            await self._retrying(route.name, lambda: self.relay(outbox))
        else:
            await self._retrying(route.name, lambda: self.send(outputs))

    def _timer(self, timer: Timer) -> None:
        async def tick() -> None:
            try:
                due = timer_decisions(timer)
                if timer.outbox is not None:
                    await self.relay(timer.outbox)
                elif due:
                    await self.send(due)
                    if timer.sent is not None:
                        timer.sent(due)
            except Exception as exc:  # retried at the next tick: what the tick decided is stored
                timer_failed(self.name, timer, exc)

        app: Any = self.app  # Faust's decorators are untyped
        app.timer(interval=timer.interval_s, name=f"{self.name}.{timer.name}")(tick)

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
        app.timer(interval=RELAY_EVERY_S, name=f"{self.name}.outbox_relay")(relay_all)

    def _start_task(self, hook: Callable[[], None]) -> None:
        async def start() -> None:
            hook()

        self.app.task(start)

    def _install_operations(self) -> None:
        """Faust's signals and timers call the shared `Operations`: assignment, heartbeat, lag."""
        operations = self.operations

        async def on_assigned(sender: Any, assigned: Any = (), **kwargs: Any) -> None:
            operations.assigned((tp.topic, tp.partition) for tp in assigned)

        async def on_revoked(sender: Any, revoked: Any = (), **kwargs: Any) -> None:
            operations.revoked((tp.topic, tp.partition) for tp in revoked)

        async def worker_started() -> None:
            operations.worker_started()

        async def heartbeat() -> None:
            operations.beat()

        async def consumer_lag() -> None:  # kafka-python blocks: in a worker thread
            await asyncio.get_running_loop().run_in_executor(None, operations.sample_lag)

        app: Any = self.app  # Faust's decorators and signals are untyped
        app.on_partitions_assigned.connect(on_assigned)
        app.on_partitions_revoked.connect(on_revoked)
        app.task(worker_started)
        app.timer(1.0, name=f"{self.name}.heartbeat")(heartbeat)
        app.timer(operations.lag_interval_s, name=f"{self.name}.consumer_lag")(consumer_lag)


def run_faust(driver: FaustDriver) -> None:
    """Run the driver's app as a Faust worker in this process until it is stopped."""
    worker = faust.Worker(driver.app, loglevel="WARN", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # its cursor escape codes would corrupt the JSON log lines
    worker.execute_from_commandline()


__all__ = ["FaustDriver", "incoming_from_faust", "make_app", "run_faust"]
