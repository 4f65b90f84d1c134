"""Issue 3 end to end through the broker: the choice -> referral path (consent respected) and the
level-2 regulation breach path, the router keeping its state in its own database."""

from __future__ import annotations

import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from cepbus.contract import codec
from cepbus.contract.models import (
    BreachKind,
    Choice,
    ChoiceRecorded,
    Event,
    IntakeRegistered,
    OrganisationKind,
    ReferralRequested,
    RegulationBreach,
    ServiceLevel,
    ServiceLevelStarted,
    new_envelope,
)
from cepbus.contract.topics import referral_inbox
from services.ledger.store import SqlLedgerStore
from services.router.store import RouterStore
from tests.support.bus import RunningBus, wait_for_ids
from tests.support.factories import intake, service_id

pytestmark = pytest.mark.integration


def ledger_event(bus: RunningBus, event_id: str) -> Event:
    store = SqlLedgerStore(bus.ledger_url)
    try:
        index = store.index_of(event_id)
        if index is None:
            raise AssertionError(f"{event_id} is not in the ledger")
        return codec.decode(store.open_payload(index))  # the event is sealed per person in the leaf
    finally:
        store.close()


def wait_for_router(bus: RunningBus, event_ids: set[str], timeout_s: float = 60.0) -> None:
    """Until the router's own database holds these intakes, notices or choices."""
    store = RouterStore(bus.router_url)
    try:
        missing = set(event_ids)
        deadline = time.monotonic() + timeout_s
        while missing and time.monotonic() < deadline:
            missing -= store.known_event_ids(missing)
            time.sleep(0.1)
        assert not missing, f"the router never recorded {missing}"
    finally:
        store.close()


def notice_issued_id(source: IntakeRegistered) -> str:
    return service_id(source.event_id, "notice-requested", "notice-issued")


def choice_for(
    source: IntakeRegistered, decided: Choice, kind: OrganisationKind | None, consent: bool
) -> ChoiceRecorded:
    return ChoiceRecorded(
        envelope=new_envelope(
            ChoiceRecorded,
            producer_org_id=source.operator_id,
            causation=source.envelope,
            occurred_at=source.envelope.occurred_at + timedelta(minutes=20),
        ),
        intake_event_id=str(source.event_id),
        operator_id=source.operator_id,
        region_code=source.region_code,
        choice=decided,
        chosen_operator_kind=kind,
        consent_to_share=consent,
    )


def level_2(source: IntakeRegistered, at: datetime) -> ServiceLevelStarted:
    return ServiceLevelStarted(
        envelope=new_envelope(
            ServiceLevelStarted, producer_org_id=source.operator_id, causation=source.envelope, occurred_at=at
        ),
        intake_event_id=str(source.event_id),
        operator_id=source.operator_id,
        operator_kind=source.operator_kind,
        region_code=source.region_code,
        level=ServiceLevel.LEVEL_2,
        channel=source.channel,
    )


def inbox_referrals(
    bus: RunningBus, org_id: str, referral_ids: set[str], timeout_s: float = 30.0
) -> dict[str, ReferralRequested]:
    topic = referral_inbox(org_id).name
    consumer = KafkaConsumer(bootstrap_servers=bus.broker.bootstrap_list, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: dict[str, ReferralRequested] = {}
        deadline = time.monotonic() + timeout_s
        while set(found) != referral_ids and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    referral = codec.decode(record.value)
                    assert isinstance(referral, ReferralRequested)
                    if referral.referral_id in referral_ids:
                        found[referral.referral_id] = referral
        return found
    finally:
        consumer.close()


def test_choosing_another_operator_refers_with_only_what_consent_allows(bus: RunningBus) -> None:
    suffix = uuid.uuid4().hex[:8]
    consenting = intake(person=f"p-consent-{suffix}", cadre=True, boeth=True, region="84", departement="69")
    refusing = intake(person=f"p-refuse-{suffix}", boeth=True, region="84", departement="38")
    with bus.publisher() as publisher:
        publisher.publish_many([consenting, refusing])
        decided = {service_id(i.event_id, "intake-decided") for i in (consenting, refusing)}
        assert not wait_for_ids(bus, decided)
        wait_for_router(bus, {str(consenting.event_id), str(refusing.event_id)})
        choices = [
            choice_for(consenting, Choice.SWITCH, OrganisationKind.CAP_EMPLOI, consent=True),
            choice_for(refusing, Choice.SWITCH, OrganisationKind.CAP_EMPLOI, consent=False),
        ]
        publisher.publish_many(choices)
    referral_ids = {service_id(c.event_id, "referral-requested"): c for c in choices}
    assert not wait_for_ids(bus, set(referral_ids))
    shared = ledger_event(bus, service_id(choices[0].event_id, "referral-requested"))
    withheld = ledger_event(bus, service_id(choices[1].event_id, "referral-requested"))
    assert isinstance(shared, ReferralRequested) and isinstance(withheld, ReferralRequested)
    assert shared.consent_to_share and shared.shared_profile == consenting.profile
    assert shared.shared_profile is not None and shared.shared_profile.boeth is True
    assert not withheld.consent_to_share and withheld.shared_profile is None
    assert shared.recipient_org_id == withheld.recipient_org_id == "cap-emploi-r84"
    # routed to the recipient's inbox as recorded
    routed = inbox_referrals(bus, "cap-emploi-r84", {shared.referral_id, withheld.referral_id})
    assert routed == {shared.referral_id: shared, withheld.referral_id: withheld}


def test_level_2_without_informed_choice_is_a_recorded_and_counted_breach(bus: RunningBus) -> None:
    suffix = uuid.uuid4().hex[:8]
    undecided = intake(person=f"p-undecided-{suffix}", cadre=True, region="53", departement="35")
    too_early = intake(person=f"p-early-{suffix}", boeth=True, region="53", departement="29")
    compliant = intake(person=f"p-ok-{suffix}", job_seeker=True, region="53", departement="56")
    people = (undecided, too_early, compliant)
    later = datetime.now(UTC) + timedelta(days=1)  # after any notice the notifier issues now
    with bus.publisher() as publisher:
        publisher.publish_many(list(people))
        notices = {notice_issued_id(source) for source in people}
        assert not wait_for_ids(bus, notices)
        wait_for_router(bus, notices)
        choices = [
            choice_for(undecided, Choice.UNDECIDED, None, consent=False),
            choice_for(compliant, Choice.STAY, None, consent=False),
        ]
        publisher.publish_many(choices)
        wait_for_router(bus, {str(c.event_id) for c in choices})
        starts = [
            level_2(undecided, later),
            level_2(too_early, too_early.envelope.occurred_at + timedelta(minutes=2)),  # before the notice
            level_2(compliant, later),
        ]
        publisher.publish_many(starts)
    breach_ids = [service_id(s.event_id, "regulation-breach") for s in starts[:2]]
    assert not wait_for_ids(bus, {*breach_ids, *(str(s.event_id) for s in starts)})
    undecided_breach, early_breach = (ledger_event(bus, event_id) for event_id in breach_ids)
    assert isinstance(undecided_breach, RegulationBreach) and isinstance(early_breach, RegulationBreach)
    assert undecided_breach.breach == BreachKind.CHOICE_UNDECIDED
    assert early_breach.breach == BreachKind.NO_NOTICE_ISSUED and "after level 2" in early_breach.reason
    assert early_breach.envelope.person_pseudonym == too_early.envelope.person_pseudonym
    # the compliant start is judged too, and is no breach
    store = RouterStore(bus.router_url)
    try:
        deadline = time.monotonic() + 30
        while not store.service_levels(str(compliant.event_id)) and time.monotonic() < deadline:
            time.sleep(0.1)
        [judged] = store.service_levels(str(compliant.event_id))
        assert judged.breach is None
    finally:
        store.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{bus.ports['router']}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    breaches = {
        sample.labels["breach"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "cepbus_regulation_breaches_total"
        and sample.labels["region"] == "53"
        and sample.labels["operator_kind"] == "regional_cep"
    }
    assert breaches["choice_undecided"] >= 1 and breaches["no_notice_issued"] >= 1
