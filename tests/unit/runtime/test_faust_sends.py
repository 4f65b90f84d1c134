"""The Faust driver's sends without a broker: aiokafka's producer replaced by a fake that refuses what a
broker would (a record too large, before it leaves or from the broker), or times out (an outage).

What is pinned here, as for the batch driver: an output refused for good is replaced by its dead letter
and the outbox goes on; an outage is raised, so the route retries it, and is never dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from cepbus.contract import codec
from cepbus.contract.models import DeadLetter, Event, IntakeRegistered
from cepbus.contract.topics import DEAD_LETTER, INTAKE_REGISTERED, NOTICE_REQUESTED
from cepbus.runtime.faust_driver import FaustDriver
from cepbus.runtime.health import HealthState
from cepbus.runtime.messages import Outgoing
from cepbus.runtime.operations import Operations
from cepbus.runtime.outbox import Outbox, outbox_schema
from cepbus.runtime.service import ServiceDefinition, route
from cepbus.runtime.settings import BrokerSettings, ServiceSettings
from cepbus.runtime.sqldb import SqliteDatabase
from tests.support.factories import intake

GROUP = "cepbus-router-faust-unit"


@dataclass
class FakeProducer:
    """aiokafka's `send`: raises what the client refuses itself, else a future the broker settles."""

    refuse_locally: set[bytes] = field(default_factory=set)
    refuse_remotely: set[bytes] = field(default_factory=set)
    time_out: bool = False
    acknowledged: list[tuple[str, bytes]] = field(default_factory=list)

    async def send(self, topic: str, key: Any, value: bytes, *_: Any) -> asyncio.Future[None]:
        if value in self.refuse_locally:
            raise MessageSizeTooLargeError("The message is 1048600 bytes when serialized")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.time_out:
            future.set_exception(KafkaTimeoutError())
        elif value in self.refuse_remotely:
            future.set_exception(MessageSizeTooLargeError())
        else:
            self.acknowledged.append((topic, value))
            future.set_result(None)
        return future


@dataclass
class Harness:
    driver: FaustDriver
    producer: FakeProducer
    outbox: Outbox
    db: SqliteDatabase

    def sent(self, topic: str) -> list[Event]:
        return [codec.decode(value) for t, value in self.producer.acknowledged if t == topic]


@pytest.fixture
def harness() -> Iterator[Harness]:
    db = SqliteDatabase(":memory:", schema=outbox_schema("unit", "sqlite"))
    outbox = Outbox(db, "unit")
    definition = ServiceDefinition(
        "router",
        ServiceSettings(group_id=GROUP, service_org_id="cep-bus-router"),
        [route(INTAKE_REGISTERED, lambda event: [], db.transaction, outbox=outbox)],
    )
    broker = BrokerSettings()
    operations = Operations("router", GROUP, broker, health=HealthState())
    driver = FaustDriver(definition, broker, health=HealthState(), operations=operations)
    producer = FakeProducer()
    driver.app = SimpleNamespace(producer=producer)  # type: ignore[assignment]
    yield Harness(driver, producer, outbox, db)
    db.close()


def stored(harness: Harness, events: list[IntakeRegistered]) -> None:
    with harness.db.transaction():
        harness.outbox.add([Outgoing(NOTICE_REQUESTED.name, e) for e in events])


@pytest.mark.parametrize("where", ["client", "broker"])
def test_an_output_refused_for_good_becomes_a_dead_letter_and_the_outbox_goes_on(
    harness: Harness, where: str
) -> None:
    events = [intake() for _ in range(3)]
    stored(harness, events)
    refused = {codec.encode(events[1])}
    if where == "client":
        harness.producer.refuse_locally = refused
    else:
        harness.producer.refuse_remotely = refused
    asyncio.run(harness.driver.relay(harness.outbox))
    assert [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)] == [
        events[0].event_id,
        events[2].event_id,
    ]
    [letter] = harness.sent(DEAD_LETTER.name)
    assert isinstance(letter, DeadLetter) and letter.error_class == "OutputRefused"
    assert "MESSAGE_TOO_LARGE" in letter.reason and str(events[1].event_id) in letter.reason
    assert letter.original_value == codec.encode(events[1])
    assert harness.outbox.count_pending() == 0


def test_an_outage_is_raised_for_the_route_to_retry(harness: Harness) -> None:
    stored(harness, [intake()])
    harness.producer.time_out = True
    with pytest.raises(KafkaTimeoutError):
        asyncio.run(harness.driver.relay(harness.outbox))
    assert harness.outbox.count_pending() == 1  # kept, sent again by the next relay
    assert harness.sent(DEAD_LETTER.name) == []


def test_an_event_sent_without_an_outbox_is_replaced_by_its_dead_letter_when_refused(
    harness: Harness,
) -> None:
    events = [intake(), intake()]
    harness.producer.refuse_remotely = {codec.encode(events[0])}
    asyncio.run(harness.driver.send([Outgoing(NOTICE_REQUESTED.name, e) for e in events]))
    assert [e.event_id for e in harness.sent(NOTICE_REQUESTED.name)] == [events[1].event_id]
    [letter] = harness.sent(DEAD_LETTER.name)
    assert isinstance(letter, DeadLetter) and letter.original_value == codec.encode(events[0])
