"""The batch stream driver (the default, `CEPBUS_RUNTIME=batch`): runs a `ServiceDefinition` on
confluent-kafka (librdkafka) with one plain loop, no stream framework in the way.

One turn of the loop: poll a batch; decode and decide (`EventProcessor.decide`, each route's events
inside one store transaction, the outputs into the route's outbox in that same transaction); send
(`OutboxRelay`, or the outputs of a batch route) and wait until the broker acknowledged; only then
commit the batch's offsets. A database or producer that fails is an outage, not a verdict: every
assigned partition is paused (`RouteRetry`: readiness and `cepbus_route_blocked` say so), the batch is
retried with backoff and no offset moves; refused or undecodable events are dead letters as with every
driver. Timers run between batches; a relay sends what a crash or a failed send left in the outboxes.

What is not about the client lives in the runtime core, shared with the Faust driver: `processing`
(decide), `sending` (send side, outbox relay), `retry`, `operations` (health, lag), `client_config`.

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
from typing import Any, Protocol, TypeVar, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from cepbus.contract.wiring import check_reads
from cepbus.runtime.client_config import librdkafka_consumer, librdkafka_producer
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
from cepbus.runtime.settings import BrokerSettings, StreamSettings

log = get_logger()
_T = TypeVar("_T")

RELAY_EVERY_S = 1.0


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge some messages: an outage, retried."""


class Revoked(RuntimeError):
    """The partitions of the batch being retried were taken away: their new owner gets them again."""


class ConsumerLike(Protocol):
    """What the driver uses of `confluent_kafka.Consumer` (the unit tests pass a fake)."""

    def subscribe(self, topics: list[str], on_assign: Any = ..., on_revoke: Any = ...) -> None: ...
    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Message]: ...
    def poll(self, timeout: float = ...) -> Message | None: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = ...) -> Any: ...
    def close(self) -> None: ...


class ProducerLike(Protocol):
    """What the driver uses of `confluent_kafka.Producer`."""

    def produce(self, topic: str, value: bytes, key: bytes | None, **kwargs: Any) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...


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
    """Delivery reports of one send: which messages the broker acknowledged, which it refused for good
    (too large, invalid: `cepbus.runtime.refusals`), and the other failures (retried)."""

    acked: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def callback(self, index: int) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is None:
                self.acked.append(index)
            else:
                self.error(index, error)

        return report

    def error(self, index: int, error: KafkaError) -> None:
        reason = permanent_refusal(error.code(), error.str())
        if reason is None:
            self.failed.append(str(error))
        else:
            self.refused[index] = reason


class BatchDriver:
    def __init__(
        self,
        definition: ServiceDefinition,
        broker: BrokerSettings | None = None,
        stream: StreamSettings | None = None,
        *,
        instruments: Instruments = NO_INSTRUMENTS,
        health: HealthState = HEALTH,
        operations: Operations | None = None,
        sample_lag: bool = True,
        consumer: ConsumerLike | None = None,
        producer: ProducerLike | None = None,
    ) -> None:
        check_reads(definition.name, definition.topics_read())  # the wiring the ACLs are made from
        self.definition = definition
        self.name = definition.name
        self.broker = broker or BrokerSettings()
        self.stream = stream or StreamSettings()
        self.health = health
        self.instruments = instruments
        group = definition.settings.group_id
        self.operations = operations or Operations(
            self.name, group, self.broker, health=health, instruments=instruments
        )
        self._sample_lag = sample_lag
        # operator silence: measured by the service whose stores remember it (the router), so a
        # restart of another service never resets the series the alert takes the minimum of
        silence = None
        if definition.silence_seed is not None:
            silence = directory_silence(self.name)
            silence.seed(definition.silence_seed())
        self.processor = EventProcessor(
            self.name,
            definition.producer_org_id,
            silence,
            max_message_bytes=self.broker.max_message_bytes,
            authorship=definition.authorship,
        )
        self.side = SendSide(self.name, Framing.from_settings(self.broker), instruments, definition.signer)
        self._relays = {
            id(outbox): OutboxRelay(outbox, self.side, self.processor.undeliverable)
            for outbox in definition.outboxes()
        }
        self._route_of = {spec.name: r for r in definition.routes for spec in r.topics}
        self._retries = {r.name: RouteRetry(self.name, r.name, health) for r in definition.routes}
        self.batch_max = max([r.batch_max or self.stream.batch_max for r in definition.routes] or [1])
        self.within_s = (
            max([r.batch_within_ms or self.stream.batch_within_ms for r in definition.routes] or [10]) / 1000
        )
        self.consumer = consumer or cast(ConsumerLike, Consumer(librdkafka_consumer(self.broker, group)))
        self.producer = producer or cast(
            ProducerLike, Producer(librdkafka_producer(self.broker, f"{group}-producer"))
        )
        self.stop = threading.Event()
        self._assignment: set[tuple[str, int]] = set()
        self._revoked = False
        self._timers_due = {timer.name: time.monotonic() + timer.interval_s for timer in definition.timers}
        self._relay_due = time.monotonic()

    # -- the group -------------------------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        assigned = {(tp.topic, tp.partition) for tp in partitions}
        self._assignment |= assigned
        self.operations.assigned(assigned)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._assignment -= revoked
        self._revoked = True
        self.operations.revoked(revoked)

    # -- sending ---------------------------------------------------------------------------------------

    def transmit(self, messages: Sequence[WireMessage]) -> Refusals:
        """Produce in order and block until the broker took every message: the ones it refused for good,
        by position; DeliveryFailed if any other is not acknowledged (an outage: the send is retried)."""
        if not messages:
            return {}
        acks = _Acks()
        for index, m in enumerate(messages):
            while True:
                try:
                    self.producer.produce(
                        m.topic, m.value, m.key, headers=m.headers, on_delivery=acks.callback(index)
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain
                    self.producer.poll(0.05)
                except KafkaException as exc:  # refused before it left (larger than message.max.bytes)
                    acks.error(index, exc.args[0])
                    break
        remaining = self.producer.flush(self.broker.request_timeout_s)
        if acks.failed or remaining:
            raise DeliveryFailed(
                f"{len(acks.failed) + remaining} of {len(messages)} not acknowledged: {acks.failed[:1]}"
            )
        return acks.refused

    def send(self, outputs: Sequence[Outgoing]) -> None:
        """Send decided events that no outbox holds (a batch route's dead letters, a timer's events); one
        the broker refuses for good is replaced by its dead letter, sent in its place."""
        while outputs:
            messages = self.side.outputs(outputs)
            self.side.before(messages)
            refused = self.transmit(messages)
            self.side.acknowledged([m for i, m in enumerate(messages) if i not in refused])
            outputs = [self.processor.undeliverable(messages[i].undeliverable(r)) for i, r in refused.items()]

    def relay(self, outbox: Outbox) -> int:
        """Send what the outbox holds unsent, in order, and mark it sent once acknowledged."""
        relay = self._relays.get(id(outbox)) or self._relays.setdefault(
            id(outbox), OutboxRelay(outbox, self.side, self.processor.undeliverable)
        )
        sent = 0
        while (batch := relay.next_batch()) is not None:
            relay.sent(batch, self.transmit(batch.messages))
            sent += len(batch.rows)
        return sent

    # -- one batch -------------------------------------------------------------------------------------

    def _until_done(self, route: str, work: Callable[[], _T], batch_tps: set[tuple[str, int]]) -> _T:
        """Run `work` until it succeeds. Meanwhile every partition is paused (the consumer keeps its group
        membership by polling), the route shows as blocked and readiness says so."""
        retry = self._retries[route]
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    return work()
                except Exception as exc:
                    delay = retry.failed(exc)
                    if not paused:
                        paused = [TopicPartition(t, p) for t, p in sorted(self._assignment)]
                        self.consumer.pause(paused)
                    self._revoked = False
                    self._wait_paused(delay)
                    if self.stop.is_set():
                        raise Revoked("stopping") from exc
                    if self._revoked and not batch_tps <= self._assignment:
                        raise Revoked(f"{route}: partitions revoked while retrying") from exc
        finally:
            if paused:
                still = [tp for tp in paused if (tp.topic, tp.partition) in self._assignment]
                if still:
                    self.consumer.resume(still)
            retry.cleared()

    def _wait_paused(self, delay_s: float) -> None:
        wake = time.monotonic() + delay_s
        while time.monotonic() < wake and not self.stop.is_set():
            self.operations.beat()
            self.consumer.poll(0.1)  # paused: returns nothing, keeps the group alive

    def _route_batch(self, route: Route, batch: list[Incoming]) -> None:
        tps = {(m.topic, m.partition) for m in batch}
        outputs = self._until_done(route.name, lambda: self.processor.decide(route, batch), tps)
        self.instruments.faults.reached(self.name, AFTER_COMMIT)
        outbox = route.outbox
        if outbox is not None:
            self._until_done(route.name, lambda: self.relay(outbox), tps)
        else:
            self._until_done(route.name, lambda: self.send(outputs), tps)

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
            due = timer_decisions(timer)
            if timer.outbox is not None:
                self.relay(timer.outbox)
            elif due:
                self.send(due)
                if timer.sent is not None:
                    timer.sent(due)
        except Exception as exc:  # retried at the next tick: what the tick decided is stored
            timer_failed(self.name, timer, exc)

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
        while not self.stop.wait(self.operations.lag_interval_s):
            self.operations.sample_lag()

    # -- the loop --------------------------------------------------------------------------------------

    def run(self) -> None:
        """Until SIGTERM/SIGINT (or `stop` set): poll, handle, send, commit; then leave the group."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop.set())
        topics = self.definition.topics_read()
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.operations.subscribed(topics)
        for hook in self.definition.on_start:
            hook()
        if self._sample_lag:
            threading.Thread(target=self._sample_lag_forever, name=f"{self.name}-lag", daemon=True).start()
        self.operations.worker_started()
        try:
            while not self.stop.is_set():
                self.operations.beat()
                messages = self.consumer.consume(self.batch_max, self.within_s)
                if messages:
                    self.process(messages)
                self._housekeeping()
        finally:
            try:
                self.producer.flush(self.broker.request_timeout_s)
                self.consumer.close()
            finally:
                self.operations.close()


__all__ = ["BatchDriver", "ConsumerLike", "DeliveryFailed", "ProducerLike", "Revoked"]
