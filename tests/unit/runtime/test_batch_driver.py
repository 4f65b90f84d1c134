"""The batch driver without a broker: a fake consumer and producer in place of confluent-kafka's, the
real `ServiceDefinition`, processor, outbox (SQLite in memory) and send side.

What is pinned here: a batch is decided in one transaction, relayed from the outbox in order, and its
offsets committed only after the broker acknowledged; a failing send holds the batch (partitions
paused, route blocked, nothing committed) and retries it; a revocation while retrying abandons the
batch and seeks back, committing nothing; a poison message becomes a dead letter and the partition goes
on; what a crash left in the outbox goes out first, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from cepbus.contract import codec
from cepbus.contract.models import DeadLetter, Event, IntakeRegistered
from cepbus.contract.topics import DEAD_LETTER, INTAKE_REGISTERED, NOTICE_REQUESTED
from cepbus.runtime.batch_driver import BatchDriver
from cepbus.runtime.health import HealthState
from cepbus.runtime.messages import Outgoing
from cepbus.runtime.metrics import ROUTE_BLOCKED
from cepbus.runtime.operations import Operations
from cepbus.runtime.outbox import Outbox, outbox_schema
from cepbus.runtime.service import ServiceDefinition, route
from cepbus.runtime.settings import BrokerSettings, ServiceSettings
from cepbus.runtime.sqldb import SqliteDatabase
from tests.support.factories import intake

GROUP = "cepbus-router-unit"


@dataclass
class FakeMessage:
    """What the driver reads of a `confluent_kafka.Message`."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes
    _key: bytes | None = b"p-1"
    _error: Any = None

    def error(self) -> Any:
        return self._error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return []


@dataclass
class FakeConsumer:
    batches: list[list[FakeMessage]] = field(default_factory=list)
    commits: list[list[tuple[str, int, int]]] = field(default_factory=list)
    paused: list[tuple[str, int]] = field(default_factory=list)
    resumed: list[tuple[str, int]] = field(default_factory=list)
    seeks: list[tuple[str, int, int]] = field(default_factory=list)
    polls: int = 0
    on_poll: Callable[[], None] | None = None  # what happens while the driver waits (a rebalance)
    on_assign: Any = None
    on_revoke: Any = None

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        return self.batches.pop(0) if self.batches else []

    def poll(self, timeout: float = -1) -> None:
        self.polls += 1
        if self.on_poll is not None:
            self.on_poll()

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused += [(tp.topic, tp.partition) for tp in partitions]

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.resumed += [(tp.topic, tp.partition) for tp in partitions]

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.topic, partition.partition, partition.offset))

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.commits.append(sorted((tp.topic, tp.partition, tp.offset) for tp in offsets))

    def close(self) -> None:
        return None


@dataclass
class FakeProducer:
    """Queues produced messages; `flush` acknowledges them, unless `fail_flushes` says otherwise (an
    outage) or `refuse` returns the error the broker refuses one with (`at_produce`: librdkafka's own
    check, raised by `produce` itself)."""

    acknowledged: list[tuple[str, bytes]] = field(default_factory=list)
    fail_flushes: int = 0
    refuse: Callable[[str, bytes], KafkaError | None] = lambda topic, value: None
    at_produce: bool = False
    refused: list[tuple[str, bytes]] = field(default_factory=list)
    _queued: list[tuple[str, bytes, Any]] = field(default_factory=list)

    def produce(self, topic: str, value: bytes, key: bytes | None, **kwargs: Any) -> None:
        if self.at_produce and (error := self.refuse(topic, value)) is not None:
            self.refused.append((topic, value))
            raise KafkaException(error)
        self._queued.append((topic, value, kwargs["on_delivery"]))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        queued, self._queued = self._queued, []
        failing = self.fail_flushes > 0
        self.fail_flushes -= 1 if failing else 0
        for topic, value, report in queued:
            if failing:
                report(KafkaError(KafkaError._MSG_TIMED_OUT), None)
            elif (error := self.refuse(topic, value)) is not None:
                self.refused.append((topic, value))
                report(error, None)
            else:
                self.acknowledged.append((topic, value))
                report(None, None)
        return 0


class NoOffsets:
    def read(self, partitions: Any) -> tuple[dict[Any, int], dict[Any, int]]:
        raise AssertionError("the unit tests sample no lag")

    def close(self) -> None:
        return None


@dataclass
class Harness:
    driver: BatchDriver
    consumer: FakeConsumer
    producer: FakeProducer
    outbox: Outbox
    db: SqliteDatabase
    handled: list[str]

    def deliver(self, *batches: list[FakeMessage]) -> None:
        """Each batch as one `consume` result, processed as the loop would."""
        for batch in batches:
            self.driver.process(batch)  # type: ignore[arg-type]

    def sent(self, topic: str) -> list[Event]:
        return [codec.decode(value) for t, value in self.producer.acknowledged if t == topic]


def intake_message(event: IntakeRegistered, offset: int, partition: int = 0) -> FakeMessage:
    return FakeMessage(INTAKE_REGISTERED.name, partition, offset, codec.encode(event))


def decision(event: Event) -> Outgoing:
    return Outgoing(NOTICE_REQUESTED.name, event)  # the wiring lets the router write it; one output per input


@pytest.fixture
def harness() -> Iterator[Harness]:
    db = SqliteDatabase(
        ":memory:", schema=[*outbox_schema("unit", "sqlite"), "CREATE TABLE seen (id TEXT PRIMARY KEY)"]
    )
    outbox = Outbox(db, "unit")
    handled: list[str] = []

    def handler(event: IntakeRegistered) -> Sequence[Outgoing]:
        db.execute("INSERT INTO seen (id) VALUES (?)", (str(event.event_id),))
        handled.append(str(event.event_id))
        return [decision(event)]

    definition = ServiceDefinition(
        "router",
        ServiceSettings(group_id=GROUP, service_org_id="cep-bus-router"),
        [route(INTAKE_REGISTERED, handler, db.transaction, outbox=outbox)],
    )
    consumer, producer = FakeConsumer(), FakeProducer()
    health = HealthState()
    broker = BrokerSettings(request_timeout_s=1.0)
    operations = Operations("router", GROUP, broker, health=health, offsets=NoOffsets())  # type: ignore[arg-type]
    driver = BatchDriver(
        definition,
        broker,
        health=health,
        operations=operations,
        sample_lag=False,
        consumer=consumer,  # type: ignore[arg-type]
        producer=producer,  # type: ignore[arg-type]
    )
    driver._on_assign(consumer, [TopicPartition(INTAKE_REGISTERED.name, p) for p in (0, 1)])
    yield Harness(driver, consumer, producer, outbox, db, handled)
    db.close()


def test_a_batch_is_decided_relayed_in_order_then_committed(harness: Harness) -> None:
    events = [intake() for _ in range(5)]
    harness.deliver([intake_message(e, offset) for offset, e in enumerate(events)])
    assert harness.handled == [str(e.event_id) for e in events]
    assert [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)] == [e.event_id for e in events]
    assert harness.outbox.count_pending() == 0
    assert harness.consumer.commits == [[(INTAKE_REGISTERED.name, 0, 5)]]


def test_a_failing_send_holds_the_batch_pauses_and_retries_before_committing(harness: Harness) -> None:
    harness.producer.fail_flushes = 2
    blocked_while_waiting: list[float] = []
    harness.consumer.on_poll = lambda: blocked_while_waiting.append(
        ROUTE_BLOCKED.labels("router", INTAKE_REGISTERED.name)._value.get()
    )
    event = intake()
    harness.deliver([intake_message(event, 7, partition=1)])
    assert sorted(set(harness.consumer.paused)) == [(INTAKE_REGISTERED.name, 0), (INTAKE_REGISTERED.name, 1)]
    assert blocked_while_waiting and set(blocked_while_waiting) == {1.0}  # blocked while it waited
    assert set(harness.consumer.resumed) == set(harness.consumer.paused)
    assert [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)] == [event.event_id]
    assert harness.consumer.commits == [[(INTAKE_REGISTERED.name, 1, 8)]]  # only after the ack
    assert harness.handled == [str(event.event_id)]  # decided once: the retry only re-sent the outbox
    assert ROUTE_BLOCKED.labels("router", INTAKE_REGISTERED.name)._value.get() == 0
    assert harness.driver.health.blocked is None


def test_a_revocation_while_retrying_abandons_the_batch_and_seeks_back(harness: Harness) -> None:
    harness.producer.fail_flushes = 1_000  # the broker stays away
    consumer, driver = harness.consumer, harness.driver
    consumer.on_poll = lambda: driver._on_revoke(consumer, [TopicPartition(INTAKE_REGISTERED.name, 1)])
    events = [intake(), intake()]
    harness.deliver([intake_message(events[0], 3, partition=0), intake_message(events[1], 9, partition=1)])
    assert consumer.commits == []  # nothing acknowledged, nothing committed
    assert consumer.seeks == [(INTAKE_REGISTERED.name, 0, 3)]  # the partition it still owns, back
    assert harness.sent(NOTICE_REQUESTED.name) == []
    assert harness.outbox.count_pending() == 2  # the decisions stay stored, for the next relay


def test_a_poison_message_is_dead_lettered_and_the_partition_goes_on(harness: Harness) -> None:
    good = intake()
    harness.deliver(
        [FakeMessage(INTAKE_REGISTERED.name, 0, 0, b"\xc3\x01 not an event"), intake_message(good, 1)]
    )
    [letter] = harness.sent(DEAD_LETTER.name)
    assert isinstance(letter, DeadLetter) and letter.source_offset == 0
    assert letter.original_value == b"\xc3\x01 not an event"
    assert [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)] == [good.event_id]
    assert harness.consumer.commits == [[(INTAKE_REGISTERED.name, 0, 2)]]


def test_what_a_crash_left_in_the_outbox_goes_out_first_in_order(harness: Harness) -> None:
    left = [intake() for _ in range(3)]
    with harness.db.transaction():
        harness.outbox.add([decision(e) for e in left])  # decided and stored, never sent
    new = intake()
    harness.deliver([intake_message(new, 0)])
    sent = [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)]
    assert sent == [*(e.event_id for e in left), new.event_id]
    assert harness.outbox.count_pending() == 0


def test_an_unavailable_store_is_retried_never_dead_lettered(harness: Harness) -> None:
    import sqlite3

    failures = [sqlite3.OperationalError("database is locked")] * 2
    original = harness.driver.processor.decide

    def flaky_decide(*args: Any) -> list[Outgoing]:
        if failures:
            raise failures.pop()
        return original(*args)

    harness.driver.processor.decide = flaky_decide  # type: ignore[method-assign]
    event = intake()
    harness.deliver([intake_message(event, 0)])
    assert harness.sent(DEAD_LETTER.name) == []
    assert [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)] == [event.event_id]
    assert harness.consumer.commits == [[(INTAKE_REGISTERED.name, 0, 1)]]


def refuse_once(
    event: Event, topic: str = NOTICE_REQUESTED.name
) -> Callable[[str, bytes], KafkaError | None]:
    """The broker refuses, for good, the first message carrying `event` (too large)."""
    statement = codec.encode(event)
    done: list[bool] = []

    def refuse(sent_topic: str, value: bytes) -> KafkaError | None:
        if sent_topic == topic and value == statement and not done:
            done.append(True)
            return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
        return None

    return refuse


@pytest.mark.parametrize("at_produce", [False, True], ids=["broker", "client"])
def test_an_output_refused_for_good_becomes_a_dead_letter_and_the_outbox_goes_on(
    harness: Harness, at_produce: bool
) -> None:
    events = [intake() for _ in range(3)]
    harness.producer.refuse, harness.producer.at_produce = refuse_once(events[1]), at_produce
    harness.deliver([intake_message(e, offset) for offset, e in enumerate(events)])
    # the two others went out, in order, and the batch was committed once: no retry, nothing blocked
    assert [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)] == [
        events[0].event_id,
        events[2].event_id,
    ]
    assert harness.consumer.commits == [[(INTAKE_REGISTERED.name, 0, 3)]]
    assert harness.consumer.paused == []
    [letter] = harness.sent(DEAD_LETTER.name)
    assert isinstance(letter, DeadLetter)
    assert letter.reason.startswith("output_refused: fr.cepbus.IntakeRegistered")
    assert "MESSAGE_TOO_LARGE" in letter.reason and letter.error_class == "OutputRefused"
    assert letter.source_topic == NOTICE_REQUESTED.name and letter.source_offset == -1
    assert letter.original_value == codec.encode(events[1])  # the statement as decided, for an operator
    assert harness.outbox.count_pending() == 0 and harness.outbox.count_stored() == 0
    # the refused row stays a tombstone: the same decision made again (a redelivery) is not stored again
    with harness.db.transaction():
        assert harness.outbox.add([decision(events[1])]) == 0
    later = intake()
    harness.deliver([intake_message(later, 3)])
    assert harness.sent(NOTICE_REQUESTED.name)[-1].event_id == later.event_id


def test_a_refused_dead_letter_is_replaced_by_one_that_keeps_only_the_digest(harness: Harness) -> None:
    """A broker whose limit is below the bus's refuses the letter too (it keeps the original): its own
    letter keeps no original, and goes."""
    event = intake()

    def refuse(topic: str, value: bytes) -> KafkaError | None:
        if topic == NOTICE_REQUESTED.name and value == codec.encode(event):
            return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
        if topic == DEAD_LETTER.name and codec.encode(event) in value:
            return KafkaError(KafkaError.INVALID_RECORD)
        return None

    harness.producer.refuse = refuse
    harness.deliver([intake_message(event, 0)])
    [letter] = harness.sent(DEAD_LETTER.name)
    assert isinstance(letter, DeadLetter) and letter.original_value == b"" and letter.original_truncated
    assert letter.source_topic == DEAD_LETTER.name and "INVALID_RECORD" in letter.reason
    assert harness.consumer.commits == [[(INTAKE_REGISTERED.name, 0, 1)]]


def test_an_event_sent_without_an_outbox_is_replaced_by_its_dead_letter_when_refused(
    harness: Harness,
) -> None:
    events = [intake(), intake()]
    harness.producer.refuse = refuse_once(events[0])
    harness.driver.send([decision(e) for e in events])
    assert [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)] == [events[1].event_id]
    [letter] = harness.sent(DEAD_LETTER.name)
    assert isinstance(letter, DeadLetter) and letter.original_value == codec.encode(events[0])


def test_an_outage_is_not_mistaken_for_a_refusal(harness: Harness) -> None:
    harness.producer.fail_flushes = 1  # a timeout: retried, never dead-lettered
    event = intake()
    harness.deliver([intake_message(event, 0)])
    assert harness.sent(DEAD_LETTER.name) == [] and harness.producer.refused == []
    assert [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)] == [event.event_id]
