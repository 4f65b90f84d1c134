"""The whole loop through a real broker, the three services as separate processes."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from kafka import KafkaProducer

from cepbus.contract import codec
from cepbus.contract.models import IntakeRegistered
from cepbus.contract.topics import INTAKE_REGISTERED
from cepbus_app.demo.loop import plan
from services.ledger.store import ErasedError, SqlLedgerStore
from tests.support.bus import RunningBus, dead_letters, wait_for_ids
from tests.support.factories import intake, service_id

pytestmark = pytest.mark.integration


def ledger_types_for(bus: RunningBus, correlation_ids: set[str]) -> Counter[str]:
    """Ledger entries of these journeys, counted by event type (duplicates would show here)."""
    store = SqlLedgerStore(bus.ledger_url)
    try:
        counts: Counter[str] = Counter()
        for entry in store.entries():
            # the correlation id is sealed with the event (an operator's free text for the journey)
            if entry.record.sealed is None:
                continue
            try:
                event = codec.decode(store.open_payload(entry.index))  # decrypts back
            except ErasedError:  # a person another test erased
                continue
            if event.envelope.correlation_id in correlation_ids:
                counts[entry.record.event_type.rsplit(".", 1)[-1]] += 1
        return counts
    finally:
        store.close()


def test_intakes_give_exactly_the_expected_notices_and_ledger_entries(bus: RunningBus) -> None:
    intakes, choices, expected = plan(150, seed=7)
    with bus.publisher() as publisher:
        publisher.publish_many(intakes)
        publisher.publish_many(choices)
    missing = wait_for_ids(bus, set(expected.ids))
    assert not missing, f"{len(missing)} expected ledger entries never arrived"
    held = ledger_types_for(bus, {i.envelope.correlation_id for i in intakes})
    assert held == expected.by_type()
    assert held["NoticeIssued"] > 10 and held["ReferralRequested"] > 0  # the load exercises the loop
    store = SqlLedgerStore(bus.ledger_url)
    try:
        assert store.verify().ok
    finally:
        store.close()


def test_redelivered_events_add_no_ledger_entry(bus: RunningBus) -> None:
    people = [f"p-redeliver-{n}-{uuid.uuid4().hex[:6]}" for n in range(3)]
    first = [intake(person=people[n % 3], cadre=True) for n in range(12)]
    with bus.publisher() as publisher:
        publisher.publish_many(first)
        ids = {str(e.event_id) for e in first}
        assert not wait_for_ids(bus, ids)
        correlations = {e.envelope.correlation_id for e in first}
        time.sleep(1.0)  # let the derived notices land too
        before = ledger_types_for(bus, correlations)
        assert before["IntakeRegistered"] == 12 and before["NoticeIssued"] == 12
        # the same events again (at-least-once redelivery), then one sentinel per person: a person's
        # events share a partition, so once the sentinel's notice is in, the duplicates were processed
        publisher.publish_many(first)
        sentinels = [intake(person=person, cadre=True) for person in people]
        publisher.publish_many(sentinels)
    sentinel_notices = {service_id(s.event_id, "notice-requested", "notice-issued") for s in sentinels}
    assert not wait_for_ids(bus, sentinel_notices)
    assert ledger_types_for(bus, correlations) == before


def test_garbage_goes_to_the_dead_letter_topic_and_the_flow_goes_on(bus: RunningBus) -> None:
    person = f"p-garbage-{uuid.uuid4().hex[:8]}"
    garbage = b"not an avro event " + uuid.uuid4().bytes
    producer = KafkaProducer(bootstrap_servers=bus.broker.bootstrap_list, acks="all")
    producer.send(INTAKE_REGISTERED.name, key=person.encode(), value=garbage).get(timeout=10)
    producer.close()
    after: IntakeRegistered = intake(person=person, boeth=True)
    with bus.publisher() as publisher:
        publisher.publish(after)
    notice_id = service_id(after.event_id, "notice-requested", "notice-issued")
    assert not wait_for_ids(bus, {str(after.event_id), notice_id}), (
        "the valid intake after the garbage got stuck"
    )
    # both consumers of the intake topic (router and ledger) dead-letter it, with the bytes kept whole
    letters = dead_letters(bus, want=2, where=lambda d: d.original_value == garbage)
    assert {letter.service for letter in letters} == {"router", "ledger"}
    for letter in letters:
        assert letter.reason.startswith("bad_marker")
        assert letter.original_key == person.encode()
        assert letter.source_topic == INTAKE_REGISTERED.name
