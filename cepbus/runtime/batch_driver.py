"""The batch stream driver (the default, `CEPBUS_RUNTIME=batch`): runs a `ServiceDefinition` on
confluent-kafka (librdkafka) with one plain loop, no stream framework in the way.

One turn of the loop: poll a batch; decode; hand each route its events inside one store transaction
(the outputs into the route's outbox in that same transaction); send (from the outbox) and wait until
the broker acknowledged; only then commit the batch's offsets. A database or producer that fails is an
outage, not a verdict: every assigned partition is paused (readiness says so, `cepbus_route_blocked`
shows it), the batch is retried with backoff and no offset moves; refused or undecodable events are
dead letters as with every driver. Timers run between batches; a relay sends what a crash or a failed
send left in the outboxes.

The client was chosen by measuring (docs/benchmarks.md): a bare consume -> produce loop costs about
3 us of CPU per message with confluent-kafka here, 13 us with aiokafka, 90 us with a Faust agent.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from cepbus.contract import codec
from cepbus.contract.wiring import check_reads, check_writes
from cepbus.runtime import faults, traffic
from cepbus.runtime.health import HEALTH, HealthState
from cepbus.runtime.lag import KafkaOffsets, LagGauges
from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import BatchHandler, Handler, Incoming, Outgoing, Refusal
from cepbus.runtime.metrics import (
    BATCHES_RETRIED,
    EVENTS_OUT,
    PROCESSING_ERRORS,
    ROUTE_BLOCKED,
    SERVICE_READY,
)
from cepbus.runtime.operations import directory_silence
from cepbus.runtime.outbox import Outbox
from cepbus.runtime.processing import EventProcessor
from cepbus.runtime.service import Route, ServiceDefinition, Timer
from cepbus.runtime.settings import BrokerSettings, OperationsSettings, StreamSettings
from cepbus.runtime.wire import Wire

log = get_logger()

RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
RELAY_EVERY_S = 1.0


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge some messages: an outage, retried."""


class Revoked(RuntimeError):
    """The partitions of the batch being retried were taken away: their new owner gets them again."""


def consumer_config(broker: BrokerSettings, group_id: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": broker.bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": broker.fetch_max_wait_ms,  # Tansu does not wake a waiting fetch
        "fetch.min.bytes": broker.fetch_min_bytes,
        "session.timeout.ms": int(broker.session_timeout_s * 1000),  # Tansu makes joins wait half of it
        "heartbeat.interval.ms": int(broker.heartbeat_interval_s * 1000),
        "max.poll.interval.ms": 300_000,
        "socket.timeout.ms": int(broker.request_timeout_s * 1000),
    }
    return {**config, **librdkafka_security(broker)}


def producer_config(broker: BrokerSettings, client_id: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": broker.bootstrap_servers,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": False,  # Tansu has no idempotent producer: consumers dedupe instead
        "linger.ms": broker.producer_linger_ms,
        "message.max.bytes": broker.max_message_bytes + 4096,
        "message.timeout.ms": int(broker.request_timeout_s * 1000),
    }
    return {**config, **librdkafka_security(broker)}


def librdkafka_security(broker: BrokerSettings) -> dict[str, Any]:
    if broker.security_protocol != "SSL":
        return {}
    config: dict[str, Any] = {"security.protocol": "SSL"}
    if broker.ssl_cafile:
        config["ssl.ca.location"] = str(broker.ssl_cafile)
    if broker.ssl_certfile:
        config["ssl.certificate.location"] = str(broker.ssl_certfile)
    if broker.ssl_keyfile:
        config["ssl.key.location"] = str(broker.ssl_keyfile)
    return config


def incoming(message: Message) -> Incoming:
    headers: list[tuple[str, bytes | None]] = cast(Any, message.headers()) or []
    return Incoming(
        cast(str, message.topic()),
        cast(int, message.partition()),
        cast(int, message.offset()),
        message.key(),
        message.value() or b"",
        tuple((name, value or b"") for name, value in headers),
    )


@dataclass
class _Acks:
    """Delivery reports of one send: which messages the broker acknowledged, and the first failure."""

    acked: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def callback(self, index: int) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is None:
                self.acked.append(index)
            else:
                self.failed.append(str(error))

        return report


class BatchDriver:
    def __init__(
        self,
        definition: ServiceDefinition,
        broker: BrokerSettings | None = None,
        stream: StreamSettings | None = None,
        *,
        operations: bool = True,
        health: HealthState = HEALTH,
    ) -> None:
        check_reads(definition.name, definition.topics_read())  # the wiring the ACLs are made from
        self.definition = definition
        self.broker = broker or BrokerSettings()
        self.stream = stream or StreamSettings()
        self.health = health
        self.wire = Wire.from_settings(self.broker)  # the framing it sends (CEPBUS_WIRE_FORMAT)
        self.name = definition.name
        self._principal = f"cepbus-{definition.name}"  # its KafkaUser (cepbus.runtime.traffic)
        # operator silence: measured by the service whose stores remember it (the router), so a
        # restart of another service never resets the series the alert takes the minimum of
        silence = None
        if operations and definition.silence_seed is not None:
            silence = directory_silence(self.name)
            silence.seed(definition.silence_seed())
        self.processor = EventProcessor(
            self.name,
            definition.producer_org_id,
            silence,
            max_message_bytes=self.broker.max_message_bytes,
        )
        self._route_of = {spec.name: r for r in definition.routes for spec in r.topics}
        self.batch_max = max([r.batch_max or self.stream.batch_max for r in definition.routes] or [1])
        self.within_s = (
            max([r.batch_within_ms or self.stream.batch_within_ms for r in definition.routes] or [10]) / 1000
        )
        self.consumer = Consumer(consumer_config(self.broker, definition.settings.group_id))
        self.producer = Producer(producer_config(self.broker, f"{definition.settings.group_id}-producer"))
        self.stop = threading.Event()
        self._assignment: set[tuple[str, int]] = set()
        self._revoked = False
        self._timers_due = {timer.name: time.monotonic() + timer.interval_s for timer in definition.timers}
        self._relay_due = time.monotonic()
        self._operations = operations
        ops = OperationsSettings()
        health.stall_after_s = ops.liveness_stall_s
        self._lag = LagGauges(self.name)
        self._offsets = KafkaOffsets(
            self.broker.bootstrap_list, definition.settings.group_id, self.broker.kafka_python_security()
        )
        self._lag_every_s = ops.lag_interval_s
        for r in definition.routes:
            ROUTE_BLOCKED.labels(self.name, r.name).set(0)

    # -- the group -------------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment |= {(tp.topic, tp.partition) for tp in partitions}
        self.health.assignment = frozenset(self._assignment)
        self._set_ready()
        log.info("partitions_assigned", partitions=len(self._assignment))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment -= {(tp.topic, tp.partition) for tp in partitions}
        self._revoked = True
        self.health.assignment = frozenset(self._assignment) if self._assignment else None
        self._set_ready()

    def _set_ready(self) -> None:
        SERVICE_READY.labels(self.name).set(1 if self.health.ready()[0] else 0)

    # -- sending ---------------------------------------------------------------------------------------

    def _produce_and_wait(
        self, messages: Sequence[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]
    ) -> None:
        """Send in order and block until the broker acknowledged every message; DeliveryFailed if not."""
        if not messages:
            return
        faults.before_send(self.name)
        check_writes(self.name, [topic for topic, *_ in messages])
        if traffic.enabled():
            for topic, *_ in messages:
                traffic.record(self._principal, "Write", "topic", topic)
        acks = _Acks()
        for index, (topic, key, value, headers) in enumerate(messages):
            while True:
                try:
                    self.producer.produce(
                        topic, value, key, headers=cast(Any, headers), on_delivery=acks.callback(index)
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain
                    self.producer.poll(0.05)
        remaining = self.producer.flush(self.broker.request_timeout_s)
        if acks.failed or remaining:
            raise DeliveryFailed(
                f"{len(acks.failed) + remaining} of {len(messages)} not acknowledged: {acks.failed[:1]}"
            )
        for topic, *_ in messages:
            EVENTS_OUT.labels(self.name, topic).inc()

    def send(self, outputs: Sequence[Outgoing]) -> None:
        frame = self.wire.frame
        self._produce_and_wait(
            [(o.topic, o.key(), frame(codec.encode(o.event), o.topic), o.headers()) for o in outputs]
        )

    def relay(self, outbox: Outbox) -> int:
        """Send what the outbox holds unsent, in order, and mark it sent once acknowledged."""
        sent = 0
        while pending := outbox.pending():
            self._produce_and_wait(
                [(m.topic, m.key, self.wire.frame(m.value, m.topic), m.headers) for m in pending]
            )
            outbox.mark_sent(pending)
            sent += len(pending)
        return sent

    # -- one batch -------------------------------------------------------------------------------------

    def _until_done(self, route: str, work: Callable[[], Any], batch_tps: set[tuple[str, int]]) -> Any:
        """Run `work` until it succeeds. Meanwhile every partition is paused (the consumer keeps its group
        membership by polling), the route shows as blocked and readiness says so."""
        delay = RETRY_FIRST_S
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    return work()
                except Exception as exc:
                    PROCESSING_ERRORS.labels(self.name, "store_unavailable").inc()
                    BATCHES_RETRIED.labels(self.name, route).inc()
                    ROUTE_BLOCKED.labels(self.name, route).set(1)
                    self.health.blocked = f"{route}: {type(exc).__name__}: {exc}"[:300]
                    log.error(
                        "batch_retry", route=route, error=f"{type(exc).__name__}: {exc}", retry_in_s=delay
                    )
                    if not paused:
                        paused = [TopicPartition(t, p) for t, p in sorted(self._assignment)]
                        self.consumer.pause(paused)
                    self._revoked = False
                    wake = time.monotonic() + delay
                    while time.monotonic() < wake and not self.stop.is_set():
                        self.health.beat()
                        self.consumer.poll(0.1)  # paused: returns nothing, keeps the group alive
                    if self.stop.is_set():
                        raise Revoked("stopping") from exc
                    if self._revoked and not batch_tps <= self._assignment:
                        raise Revoked(f"{route}: partitions revoked while retrying") from exc
                    delay = min(delay * 2, RETRY_MAX_S)
        finally:
            if paused:
                still = [tp for tp in paused if (tp.topic, tp.partition) in self._assignment]
                if still:
                    self.consumer.resume(still)
                ROUTE_BLOCKED.labels(self.name, route).set(0)
                self.health.blocked = None

    def _route_batch(self, route: Route, batch: list[Incoming]) -> None:
        tps = {(m.topic, m.partition) for m in batch}
        if route.whole_batch:
            outputs = self._until_done(route.name, lambda: self._whole_batch(route, batch), tps)
        else:
            handler = cast("Handler[Any]", route.handler)
            outputs = self._until_done(
                route.name,
                lambda: self.processor.handle_batch(
                    batch, route.accepts, handler, route.transaction, route.outbox
                ),
                tps,
            )
        faults.reached(self.name, faults.AFTER_COMMIT)
        if route.outbox is not None:
            outbox = route.outbox
            self._until_done(route.name, lambda: self.relay(outbox), tps)
        else:
            self._until_done(route.name, lambda: self.send(outputs), tps)

    def _whole_batch(self, route: Route, batch: list[Incoming]) -> list[Outgoing]:
        received, letters = self.processor.split_batch(batch, route.accepts)
        decided = cast("BatchHandler", route.handler)(received) if received else []
        return [
            self.processor.dead_letter(out.message, out.reason, out.detail, "Refused")
            if isinstance(out, Refusal)
            else out
            for out in decided
        ] + letters

    def process(self, messages: Sequence[Message]) -> None:
        by_route: dict[str, list[Incoming]] = defaultdict(list)
        routes: dict[str, Route] = {}
        offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume_error", error=str(error))
                continue
            item = incoming(message)
            route = self._route_of.get(item.topic)
            if route is None:  # a topic subscribed by pattern or left over: nothing reads it
                continue
            by_route[route.name].append(item)
            routes[route.name] = route
            offsets[(item.topic, item.partition)] = item.offset + 1
        if not offsets:
            return
        try:
            for name, batch in by_route.items():
                self._route_batch(routes[name], batch)
        except Revoked as revoked:  # not committed: the partitions' new owner (or we, later) get them again
            log.warning("batch_abandoned", reason=str(revoked))
            self._rewind(messages)
            return
        commit = [TopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in self._assignment]
        if commit:
            try:
                self.consumer.commit(offsets=commit, asynchronous=True)
            except KafkaException as exc:  # handled and acknowledged: a redelivery is deduplicated
                log.warning("commit_failed", error=str(exc))

    def _rewind(self, messages: Sequence[Message]) -> None:
        """Seek the partitions we still own back to the first message of the abandoned batch."""
        first: dict[tuple[str, int], int] = {}
        for m in messages:
            if m.error() is None:
                first.setdefault((cast(str, m.topic()), cast(int, m.partition())), cast(int, m.offset()))
        for (topic, partition), offset in first.items():
            if (topic, partition) in self._assignment:
                try:
                    self.consumer.seek(TopicPartition(topic, partition, offset))
                except KafkaException as exc:
                    log.warning("rewind_failed", topic=topic, partition=partition, error=str(exc))

    # -- timers and housekeeping -----------------------------------------------------------------------

    def _tick(self, timer: Timer) -> None:
        try:
            if timer.outbox is not None and timer.transaction is not None:
                with timer.transaction():
                    timer.outbox.add(list(timer.tick()))
                self.relay(timer.outbox)
                return
            due = list(timer.tick())
            if due:
                self.send(due)
                if timer.sent is not None:
                    timer.sent(due)
        except Exception as exc:  # retried at the next tick: what the tick decided is stored
            PROCESSING_ERRORS.labels(self.name, f"timer_{timer.name}_failed").inc()
            log.error("timer_failed", timer=timer.name, error=f"{type(exc).__name__}: {exc}")

    def _housekeeping(self) -> None:
        now = time.monotonic()
        for timer in self.definition.timers:
            if now >= self._timers_due[timer.name]:
                self._tick(timer)
                self._timers_due[timer.name] = time.monotonic() + timer.interval_s
        if now >= self._relay_due:
            for outbox in self.definition.outboxes():
                try:
                    self.relay(outbox)
                except Exception as exc:  # the broker or the database away: the next turn retries
                    log.warning("outbox_relay_failed", error=f"{type(exc).__name__}: {exc}")
            self._relay_due = now + RELAY_EVERY_S
        self.producer.poll(0)

    def _sample_lag_forever(self) -> None:
        while not self.stop.wait(self._lag_every_s):
            assignment = self.health.assignment
            if not assignment:
                continue
            if traffic.enabled():  # the offsets read below: Describe of the topics and of the group
                for topic in {t for t, _ in assignment}:
                    traffic.record(self._principal, "Describe", "topic", topic)
                traffic.record(self._principal, "Describe", "group", self.definition.settings.group_id)
            try:
                committed, ends = self._offsets.read(sorted(assignment))
            except Exception as exc:  # the broker may be briefly away: say so, try again next time
                self._lag.failed()
                log.warning("lag_sample_failed", error=f"{type(exc).__name__}: {exc}")
                self._offsets.close()
                continue
            self._lag.update(committed, ends, time.time())

    # -- the loop --------------------------------------------------------------------------------------

    def run(self) -> None:
        """Until SIGTERM/SIGINT (or `stop` set): poll, handle, send, commit; then leave the group."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop.set())
        SERVICE_READY.labels(self.name).set(0)
        self.consumer.subscribe(
            self.definition.topics_read(), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        for topic in self.definition.topics_read():
            traffic.record(self._principal, "Read", "topic", topic)
        traffic.record(self._principal, "Read", "group", self.definition.settings.group_id)
        for hook in self.definition.on_start:
            hook()
        if self._operations:
            threading.Thread(target=self._sample_lag_forever, name=f"{self.name}-lag", daemon=True).start()
        self.health.worker_started = True
        self._set_ready()
        try:
            while not self.stop.is_set():
                self.health.beat()
                messages = self.consumer.consume(self.batch_max, self.within_s)
                if messages:
                    self.process(messages)
                self._housekeeping()
        finally:
            try:
                self.producer.flush(self.broker.request_timeout_s)
                self.consumer.close()
            finally:
                self._offsets.close()


__all__ = ["BatchDriver", "consumer_config", "producer_config"]
