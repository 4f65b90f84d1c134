"""Router and notifier handlers: events in, events out, no broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cepbus.contract.models import (
    Choice,
    ChoiceRecorded,
    IntakeDecided,
    NoticeIssued,
    NoticeRequested,
    OrganisationKind,
    ReferralRequested,
    new_envelope,
)
from cepbus.contract.topics import NOTICE_ISSUED, NOTICE_REQUESTED, REFERRAL_REQUESTED, referral_inbox
from cepbus.reference import load_reference
from cepbus.runtime.messages import Rejected
from services.notifier.handlers import NotifierHandlers
from services.router.handlers import RouterHandlers
from tests.support.factories import intake

REFERENCE = load_reference()
ROUTER = RouterHandlers(REFERENCE)
NOTIFIER = NotifierHandlers(REFERENCE)


def test_cadre_with_disability_at_regional_operator_gets_one_notice_naming_both() -> None:
    event = intake(cadre=True, boeth=True)
    decided, out = ROUTER.on_intake(event)
    assert isinstance(decided.event, IntakeDecided) and decided.event.notice_due
    request = out.event
    assert out.topic == NOTICE_REQUESTED.name and isinstance(request, NoticeRequested)
    assert request.inform == [OrganisationKind.APEC, OrganisationKind.CAP_EMPLOI]
    assert {"R-APEC-CADRE", "R-CAPEMPLOI-BOETH"} <= set(request.rules)
    assert request.envelope.correlation_id == event.envelope.correlation_id
    assert request.envelope.person_pseudonym == event.envelope.person_pseudonym
    assert request.envelope.causation_id == str(event.event_id)


def test_replaying_an_intake_emits_the_same_event_ids() -> None:
    event = intake(cadre=True)
    first, again = ROUTER.on_intake(event)[1].event, ROUTER.on_intake(event)[1].event
    assert first.event_id == again.event_id
    notice_a, notice_b = (
        NOTIFIER.on_notice_requested(first)[0].event,
        NOTIFIER.on_notice_requested(again)[0].event,
    )
    assert notice_a.event_id == notice_b.event_id


def test_employee_of_the_regional_public_needs_no_notice() -> None:
    [decided] = ROUTER.on_intake(intake())
    assert isinstance(decided.event, IntakeDecided) and not decided.event.notice_due


def test_public_agent_is_told_the_regional_operator_does_not_serve_them() -> None:
    _, out = ROUTER.on_intake(intake(employment_status="public_agent"))
    [issued] = NOTIFIER.on_notice_requested(out.event)
    assert isinstance(issued.event, NoticeIssued) and "agent" in issued.event.text.lower()


def test_intake_before_the_region_opened_is_rejected() -> None:
    early = intake(region="04", departement="974", occurred_at=datetime(2020, 2, 15, 10, tzinfo=UTC))
    with pytest.raises(Rejected, match="intake_rejected") as refused:
        ROUTER.on_intake(early)
    [decided] = refused.value.also  # recorded as decided "rejected" before the dead letter
    assert isinstance(decided.event, IntakeDecided) and decided.event.status == "rejected"


def test_notice_names_the_operators_with_a_hash_of_the_text() -> None:
    import hashlib

    request = ROUTER.on_intake(intake(boeth=True))[1].event
    [out] = NOTIFIER.on_notice_requested(request)
    notice = out.event
    assert out.topic == NOTICE_ISSUED.name and isinstance(notice, NoticeIssued)
    assert "Cap emploi" in notice.text
    assert notice.text_sha256 == hashlib.sha256(notice.text.encode()).hexdigest()
    assert notice.notice_request_id == str(request.event_id)


def choice(
    event_intake: object, decided: Choice, kind: OrganisationKind | None, consent: bool
) -> ChoiceRecorded:
    from cepbus.contract.models import IntakeRegistered

    assert isinstance(event_intake, IntakeRegistered)
    return ChoiceRecorded(
        envelope=new_envelope(
            ChoiceRecorded, producer_org_id=event_intake.operator_id, causation=event_intake.envelope
        ),
        intake_event_id=str(event_intake.event_id),
        operator_id=event_intake.operator_id,
        region_code=event_intake.region_code,
        choice=decided,
        chosen_operator_kind=kind,
        consent_to_share=consent,
    )


def test_switching_operator_makes_a_referral_routed_to_the_recipient_inbox() -> None:
    source = intake(cadre=True, region="84", departement="69")
    [out] = ROUTER.on_choice(choice(source, Choice.SWITCH, OrganisationKind.APEC, consent=False))
    referral = out.event
    assert out.topic == REFERRAL_REQUESTED.name and isinstance(referral, ReferralRequested)
    assert referral.recipient_org_id == "apec-r84" and referral.requester_org_id == source.operator_id
    assert referral.shared_profile is None and referral.consent_to_share is False
    [routed] = ROUTER.on_referral(referral)
    assert routed.topic == referral_inbox("apec-r84").name and routed.event == referral


def test_staying_or_undecided_makes_no_referral() -> None:
    source = intake(cadre=True)
    assert ROUTER.on_choice(choice(source, Choice.STAY, None, consent=True)) == []
    assert ROUTER.on_choice(choice(source, Choice.UNDECIDED, None, consent=True)) == []


def test_referral_to_an_unknown_organisation_is_rejected() -> None:
    source = intake(cadre=True)
    [out] = ROUTER.on_choice(choice(source, Choice.SWITCH, OrganisationKind.APEC, consent=False))
    assert isinstance(out.event, ReferralRequested)
    stray = out.event.model_copy(update={"recipient_org_id": "nobody-r99"})
    with pytest.raises(Rejected, match="unknown_recipient"):
        ROUTER.on_referral(stray)
