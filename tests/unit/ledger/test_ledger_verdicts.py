"""The ledger records verdicts, not claims: each attack of a dishonest partner on the trail, played
against the real ledger writer, store and audit report (no broker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cepbus.auditlog.report import build_report
from cepbus.contract import codec
from cepbus.contract.models import (
    Event,
    IntakeRegistered,
    ReferralDeadlineBreached,
    ReferralStatus,
    ReferralStatusChanged,
    RegulationBreach,
    derived_event_id,
    new_envelope,
)
from cepbus.contract.statements import statement_digest
from cepbus.contract.topics import (
    INTAKE_REGISTERED,
    LEDGER_TOPICS,
    REFERRAL_DEADLINE_BREACHED,
    REFERRAL_REQUESTED,
    REFERRAL_STATUS,
    REGULATION_BREACH,
)
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.reference.producers import ProducerCatalog
from cepbus.runtime.messages import Incoming, Outgoing, Received, Refusal
from cepbus.trust.development import dev_private_key
from cepbus.trust.ids import DEVELOPMENT_IDS
from services.ledger.store import SqlLedgerStore
from services.ledger.writer import LedgerWriter
from services.router.referrals.deadlines import DeadlinePolicy
from services.router.referrals.handlers import ReferralLifecycle, UpdateRefused
from services.router.referrals.store import ReferralStore
from tests.support.authorship import Admitted
from tests.support.authorship import received as admitted_received
from tests.support.factories import MONDAY, RECIPIENT, intake, referral, update
from tests.support.fakes import MovableClock

PARTNER = "opco-sante"  # a local partner with credentials to the status topic


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlLedgerStore]:
    opened = SqlLedgerStore(tmp_path / "ledger.db")
    yield opened
    opened.close()


@pytest.fixture
def writer(store: SqlLedgerStore) -> LedgerWriter:
    producers = ProducerCatalog.build(load_reference(), load_directory())
    return LedgerWriter(store, producers, {spec.name: spec for spec in LEDGER_TOPICS})


@pytest.fixture
def lifecycle(tmp_path: Path) -> Iterator[ReferralLifecycle]:
    referrals = ReferralStore(f"sqlite:///{tmp_path / 'referrals.db'}")
    yield Admitted(
        referrals,
        load_directory(),
        load_reference(),
        deadlines=DeadlinePolicy(2, 5, 15),
        clock=MovableClock(MONDAY),
    )
    referrals.close()


_offsets = iter(range(10**9))


def received(topic: str, event: Event) -> Received:
    return Received(Incoming(topic, 0, next(_offsets), event.partition_key(), codec.encode(event)), event)


def answered(
    lifecycle: ReferralLifecycle, step: ReferralStatusChanged, writer: LedgerWriter
) -> list[Outgoing | Refusal]:
    """A partner's update as the bus carries it: the ledger records the update itself (signed by its
    author, cep.referral.status), the router handles it and the ledger records what it decided."""
    recorded = writer.append_batch([admitted_received(step, REFERRAL_STATUS.name)])
    return [*recorded, *sent(lifecycle.on_status(step), writer)]


def sent(outputs: Sequence[Outgoing], writer: LedgerWriter) -> list[Outgoing | Refusal]:
    """Route the router's outputs to the ledger as the bus does, for the topics the ledger records."""
    return writer.append_batch(
        [received(out.topic, out.event) for out in outputs if out.topic in writer.topics]
    )


def report_of(store: SqlLedgerStore) -> dict:  # type: ignore[type-arg]
    return build_report(entry.record for entry in store.entries())


def refusal_reasons(outputs: Sequence[Outgoing | Refusal]) -> list[str]:
    return [out.reason for out in outputs if isinstance(out, Refusal)]


def test_an_unsigned_accepted_never_counts_as_an_acceptance(
    writer: LedgerWriter, store: SqlLedgerStore, lifecycle: ReferralLifecycle
) -> None:
    ref = referral()
    writer.append_batch([received(REFERRAL_REQUESTED.name, ref)])  # sent by the router in real life
    lifecycle.on_requested(ref)
    forged = ReferralStatusChanged(
        envelope=new_envelope(
            ReferralStatusChanged, producer_org_id="nobody-we-know", causation=ref.envelope
        ),
        referral_id=ref.referral_id,
        status=ReferralStatus.ACCEPTED,
        actor_org_id="nobody-we-know",
    )
    # the raw claim, sent straight to the ledger's topics, is refused: nobody we know may write it (the
    # runtime's edge refuses it before any handler, for want of a directory key: tests/unit/runtime)
    assert refusal_reasons(writer.append_batch([received(REFERRAL_STATUS.name, forged)])) == [
        "producer_not_allowed"
    ]
    with pytest.raises(UpdateRefused) as refused:
        ReferralLifecycle.on_status(lifecycle, forged)  # as if it reached the router unverified
    assert refused.value.reply is None  # nobody authenticated: no rejection notice to anyone
    assert not refusal_reasons(sent(refused.value.also, writer))  # the router's refused verdict is recorded
    report = report_of(store)
    assert store.index_of(str(forged.event_id)) is None
    assert report["referrals"]["accepted"] == 0 and report["referrals"]["acceptance_rate"] is None
    assert report["referrals"]["updates_refused"] == {"unsigned": 1}


def test_a_signed_accepted_is_counted_once_from_the_routers_verdict(
    writer: LedgerWriter, store: SqlLedgerStore, lifecycle: ReferralLifecycle
) -> None:
    ref = referral()
    writer.append_batch([received(REFERRAL_REQUESTED.name, ref)])
    lifecycle.on_requested(ref)
    updates = [update(ref, ReferralStatus.RECEIVED), update(ref, ReferralStatus.ACCEPTED)]
    for step in updates:
        assert not refusal_reasons(answered(lifecycle, step, writer))
    again = answered(lifecycle, updates[-1], writer)  # a redelivery
    assert not refusal_reasons(again)
    report = report_of(store)
    assert report["referrals"]["accepted"] == 1 and report["referrals"]["acceptance_rate"] == 1.0
    assert report["events_by_type"]["fr.cepbus.ReferralUpdateVerdict"] == 2  # the redelivery added nothing


@pytest.mark.parametrize(
    ("topic", "event", "reason"),
    [
        (REFERRAL_STATUS.name, intake(), "not_allowed_on_topic"),  # an intake on the partner-writable topic
        (INTAKE_REGISTERED.name, None, "not_allowed_on_topic"),  # a breach on the intake topic
        (REGULATION_BREACH.name, None, "producer_not_allowed"),  # a breach a partner writes itself
    ],
)
def test_events_on_the_wrong_topic_or_from_the_wrong_producer_never_reach_the_ledger(
    writer: LedgerWriter, store: SqlLedgerStore, topic: str, event: Event | None, reason: str
) -> None:
    the_intake = intake()
    forged = event or RegulationBreach(
        envelope=new_envelope(RegulationBreach, producer_org_id=PARTNER, causation=the_intake.envelope),
        service_level_event_id=str(uuid.uuid4()),
        intake_event_id=str(the_intake.event_id),
        operator_id="cep-r11",
        operator_kind="regional_cep",
        region_code="11",
        breach="no_notice_issued",
        reason="forged",
        ruleset_version="x",
    )
    assert refusal_reasons(writer.append_batch([received(topic, forged)])) == [reason]
    assert store.size() == 0
    assert report_of(store)["regulation_breaches"]["total"] == 0


def test_an_operator_cannot_publish_an_intake_of_another_operator(writer: LedgerWriter) -> None:
    theirs = intake(region="84", departement="69")  # an intake of cep-r84 ...
    spoofed = theirs.model_copy(
        update={"envelope": theirs.envelope.model_copy(update={"producer_org_id": "cep-r11"})}
    )  # ... published by cep-r11
    assert refusal_reasons(writer.append_batch([received(INTAKE_REGISTERED.name, spoofed)])) == [
        "claim_mismatch"
    ]


def breach_for(ref_id: str, event_id: uuid.UUID, producer: str, person: str) -> ReferralDeadlineBreached:
    envelope = new_envelope(
        ReferralDeadlineBreached, producer_org_id=producer, person_pseudonym=person, event_id=event_id
    )
    return ReferralDeadlineBreached(
        envelope=envelope,
        referral_id=ref_id,
        requester_org_id="cep-r11",
        recipient_org_id=RECIPIENT,
        recipient_kind="apec",
        region_code="11",
        deadline="received",
        business_days=2,
        due_at=MONDAY + timedelta(days=2),
        status_at_breach="requested",
        owner_org_id=RECIPIENT,
    )


def test_a_pre_claimed_id_does_not_hide_the_routers_breach(
    writer: LedgerWriter, store: SqlLedgerStore, lifecycle: ReferralLifecycle
) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    lifecycle.clock.now = MONDAY + timedelta(days=5)  # type: ignore[attr-defined]
    [breach] = [o for o in lifecycle.sweep() if o.topic == REFERRAL_DEADLINE_BREACHED.name]
    # The attacker computes the id the breach would have with a public derivation (as before keyed ids)
    # and sends junk under it first, on a topic it may write.
    guessed = derived_event_id(ref.referral_id, "deadline-breached:received")
    junk = referral(requester="opco-sante", recipient="cep-r11", person="p-test")
    junk = junk.model_copy(update={"envelope": junk.envelope.model_copy(update={"event_id": guessed})})
    assert not refusal_reasons(writer.append_batch([received(REFERRAL_REQUESTED.name, junk)]))
    assert breach.event.event_id != guessed  # keyed with the router's secret: not computable by others
    assert not refusal_reasons(sent([breach], writer))
    assert report_of(store)["deadline_breaches"]["total"] == 1


def test_the_same_id_with_other_content_is_a_collision_never_a_duplicate(
    writer: LedgerWriter, store: SqlLedgerStore
) -> None:
    ref_id, event_id = str(uuid.uuid4()), DEVELOPMENT_IDS.derive("x", "y")
    real = breach_for(ref_id, event_id, "cep-bus-router", "p-1")
    junk = breach_for(ref_id, event_id, "cep-bus-router", "p-1").model_copy(update={"deadline": "answered"})
    assert not refusal_reasons(writer.append_batch([received(REFERRAL_DEADLINE_BREACHED.name, junk)]))
    outcome = writer.append_batch([received(REFERRAL_DEADLINE_BREACHED.name, real)])
    assert refusal_reasons(outcome) == ["id_collision"]
    # a redelivery of what is stored (another occurred_at, as a re-derivation after a crash) is a duplicate
    again = junk.model_copy(
        update={"envelope": junk.envelope.model_copy(update={"occurred_at": datetime.now(UTC)})}
    )
    assert not refusal_reasons(writer.append_batch([received(REFERRAL_DEADLINE_BREACHED.name, again)]))
    assert store.size() == 1


def test_pre_claiming_another_organisations_update_id_does_not_block_it(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    genuine = update(ref, ReferralStatus.RECEIVED)  # the recipient's update ...
    squatter = ReferralStatusChanged(  # ... whose id another organisation sends first, signed by itself
        envelope=genuine.envelope.model_copy(update={"producer_org_id": PARTNER}),
        referral_id=ref.referral_id,
        status=ReferralStatus.RECEIVED,
        actor_org_id=PARTNER,
    )
    with pytest.raises(UpdateRefused) as refused:
        lifecycle.on_status(squatter)
    assert refused.value.reason == "not_a_party"
    [verdict] = lifecycle.on_status(genuine)
    assert verdict.event.verdict == "applied"  # type: ignore[attr-defined]
    assert lifecycle.store.get(ref.referral_id).state == ReferralStatus.RECEIVED  # type: ignore[union-attr]


def test_a_second_booking_after_a_no_show_is_applied(lifecycle: ReferralLifecycle) -> None:
    from cepbus.sdk.partner import PartnerClient
    from cepbus.sdk.publisher import Publisher
    from tests.support.fakes import RecordingProducer

    ref = referral()
    lifecycle.on_requested(ref)
    client = PartnerClient(
        RECIPIENT, dev_private_key(RECIPIENT), publisher=Publisher(producer=RecordingProducer())
    )
    steps = [
        client.update(ref, ReferralStatus.RECEIVED),
        client.update(ref, ReferralStatus.ACCEPTED),
        client.update(ref, ReferralStatus.APPOINTMENT_BOOKED),
        client.update(ref, ReferralStatus.NO_SHOW),
        client.update(ref, ReferralStatus.APPOINTMENT_BOOKED, attempt=2),
    ]
    for step in steps:
        lifecycle.on_status(step)
    assert lifecycle.store.get(ref.referral_id).state == ReferralStatus.APPOINTMENT_BOOKED  # type: ignore[union-attr]
    assert len(lifecycle.store.history(ref.referral_id)) == 5


def test_an_update_backdated_by_its_sender_gives_no_negative_delay(
    writer: LedgerWriter, store: SqlLedgerStore, lifecycle: ReferralLifecycle
) -> None:
    ref = referral()
    writer.append_batch([received(REFERRAL_REQUESTED.name, ref)])
    lifecycle.on_requested(ref)
    steps = [
        ReferralStatus.RECEIVED,
        ReferralStatus.ACCEPTED,
        ReferralStatus.APPOINTMENT_BOOKED,
        ReferralStatus.FIRST_APPOINTMENT_HELD,
    ]
    for status in steps:  # the partner claims every step happened a week before the referral
        answered(lifecycle, update(ref, status, at=MONDAY - timedelta(days=7)), writer)
    delay = report_of(store)["referrals"]["delay_to_first_appointment"]
    assert delay["count"] == 1 and delay["p50_s"] >= 0  # on the bus's own recorded times
    assert delay["claimed"]["p50_s"] < 0  # the claim, shown beside


def test_a_person_event_without_a_pseudonym_is_refused_at_the_edge() -> None:
    from cepbus.sdk.publisher import InvalidEvent, Publisher
    from tests.support.fakes import RecordingProducer

    data = intake().model_dump()
    data["envelope"]["person_pseudonym"] = None
    fake = RecordingProducer()
    with pytest.raises(InvalidEvent, match="person_pseudonym"):
        Publisher(producer=fake).publish((IntakeRegistered, data))
    assert fake.sent == []
    with pytest.raises(ValueError, match="person_pseudonym"):
        IntakeRegistered.model_validate(data)


def test_every_kind_of_field_has_a_content_digest() -> None:
    """Dates (a démission-reconversion request), bytes (signatures), enums, uuids, nested records."""
    from datetime import date

    from cepbus_app.demo.simulator import Simulator
    from services.ledger.writer import content_digest

    simulator = Simulator(load_reference(), seed=1)
    events: list[Event] = list(simulator.intakes(200))
    reconversion = next(e for e in events if getattr(e, "cep_requested_on", None))
    assert isinstance(reconversion.cep_requested_on, date)  # type: ignore[attr-defined]
    events.append(update(referral(), ReferralStatus.RECEIVED))  # bytes: the signature
    digests = {content_digest(e) for e in events}
    assert len(digests) == len(events)


def test_an_applied_verdict_without_its_signed_update_in_the_ledger_is_not_counted(
    writer: LedgerWriter, store: SqlLedgerStore, lifecycle: ReferralLifecycle
) -> None:
    """The router's word alone (its verdict, the update never recorded: a verdict replayed or injected
    on its own) counts for nothing; with the update recorded, the same verdict counts."""
    ref = referral()
    writer.append_batch([received(REFERRAL_REQUESTED.name, ref)])
    lifecycle.on_requested(ref)
    assert not refusal_reasons(answered(lifecycle, update(ref, ReferralStatus.RECEIVED), writer))
    step = update(ref, ReferralStatus.ACCEPTED)
    assert not refusal_reasons(sent(lifecycle.on_status(step), writer))  # the verdict only
    report = report_of(store)["referrals"]
    assert (report["accepted"], report["applied_without_update"]) == (0, 1)
    writer.append_batch([admitted_received(step, REFERRAL_STATUS.name)])  # now the update itself
    report = report_of(store)["referrals"]
    assert (report["accepted"], report["applied_without_update"]) == (1, 0)


def test_a_status_update_leaf_keeps_its_digest_but_never_its_signer_in_clear(
    writer: LedgerWriter, store: SqlLedgerStore
) -> None:
    """Who signs an update is the recipient, i.e. the person's public: neither its key id nor its
    signature (which anyone could try every directory key on) is in clear; the digest links the verdict."""
    step = update(referral(), ReferralStatus.ACCEPTED)
    writer.append_batch([admitted_received(step, REFERRAL_STATUS.name)])
    [entry] = [e for e in store.entries() if e.record.event_type == step.avro_name]
    assert entry.record.statement is None and "producer_org_id" not in entry.record.facts
    assert entry.record.facts["statement_digest"] == statement_digest(codec.encode(step)).hex()
    assert RECIPIENT.encode() not in entry.leaf
