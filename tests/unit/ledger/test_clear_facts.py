"""What a leaf keeps in clear tells no person's situation from another's (issue #23, finding 4): each
ledgered event type is built with the values that would reveal one (a disability: Cap emploi, the BOETH
rule, the notice naming it; a partner's own reason code; an operator's journey id holding the pseudonym)
and none of them is in its clear facts, while the facts the audit report reads stay."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from cepbus.contract.models import (
    Channel,
    Choice,
    ChoiceRecorded,
    DecisionStatus,
    Event,
    IntakeDecided,
    NoticeIssued,
    NoticeRequested,
    OrganisationKind,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateVerdict,
    UpdateVerdict,
    derived_event_id,
    new_envelope,
)
from services.ledger.facts import regulation_facts

PERSON = "p-7c1e0b2a"
JOURNEY = f"dossier-{PERSON}"  # an operator's free text for the journey
CAP = OrganisationKind.CAP_EMPLOI
TEXT = "Vous pouvez aussi vous adresser à Cap emploi Auvergne-Rhône-Alpes ..."
REFERRAL = str(uuid.uuid4())
UPDATE_ID = derived_event_id(REFERRAL, "status:cap-emploi-r84:received")
AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TEXT_SHA256 = hashlib.sha256(TEXT.encode()).hexdigest()


def envelope(event_type: type[Event], producer: str) -> dict[str, object]:
    return {
        "envelope": new_envelope(
            event_type,
            producer_org_id=producer,
            person_pseudonym=PERSON,
            correlation_id=JOURNEY,
            occurred_at=AT,
        )
    }


WHERE = {"operator_id": "cep-r84", "region_code": "84"}
EVENTS: list[Event] = [
    IntakeDecided(
        **envelope(IntakeDecided, "cep-bus-router"), intake_event_id="i-1", operator_kind="regional_cep",
        departement_code="69", status=DecisionStatus.DECIDED, competent_operator=CAP, inform=[CAP],
        notice_due=True, rules=["R-CAPEMPLOI-BOETH"], reasons=["R-CAPEMPLOI-BOETH: BOETH"], missing_fields=[],
        ruleset_version="v", reference_version="r", **WHERE,
    ),
    NoticeRequested(
        **envelope(NoticeRequested, "cep-bus-router"), intake_event_id="i-1", operator_kind="regional_cep",
        departement_code="69", channel=Channel.IN_PERSON, inform=[CAP], rules=["R-CAPEMPLOI-BOETH"],
        ruleset_version="v", **WHERE,
    ),
    NoticeIssued(
        **envelope(NoticeIssued, "cep-bus-notifier"), notice_request_id="n-1", intake_event_id="i-1",
        channel=Channel.IN_PERSON, inform=[CAP], text=TEXT, text_sha256=TEXT_SHA256, **WHERE,
    ),
    ChoiceRecorded(
        **envelope(ChoiceRecorded, "cep-r84"), intake_event_id="i-1", choice=Choice.SWITCH,
        chosen_operator_kind=CAP, consent_to_share=True, **WHERE,
    ),
    ReferralRequested(
        **envelope(ReferralRequested, "cep-bus-router"), referral_id=REFERRAL, requester_org_id="cep-r84",
        recipient_org_id="cap-emploi-r84", recipient_kind=CAP, region_code="84", reason="choix éclairé",
        consent_to_share=True,
    ),
    ReferralStatusChanged(
        **envelope(ReferralStatusChanged, "cap-emploi-r84"), referral_id=REFERRAL,
        status=ReferralStatus.DECLINED, actor_org_id="cap-emploi-r84", reason_code="out_of_public",
    ),
    ReferralUpdateVerdict(
        **envelope(ReferralUpdateVerdict, "cep-bus-router"), update_event_id=str(UPDATE_ID),
        referral_id=REFERRAL, verdict=UpdateVerdict.APPLIED, status=ReferralStatus.DECLINED,
        reason_code="out_of_public", signer_org_id="cap-emploi-r84", state_after=ReferralStatus.DECLINED,
        claimed_occurred_at=AT,
    ),
]  # fmt: skip
REVEALING = ["cap_emploi", "cap-emploi", "CAPEMPLOI", "BOETH", "out_of_public", PERSON, str(UPDATE_ID)]


def test_no_clear_fact_of_any_ledgered_event_reveals_the_persons_situation() -> None:
    for event in EVENTS:
        facts = regulation_facts(event)
        clear = " ".join(facts.values())
        assert not [word for word in REVEALING if word in clear], (type(event).__name__, facts)
        assert TEXT_SHA256 not in clear
        assert "correlation_id" not in facts and "causation_id" not in facts


def test_the_facts_the_report_reads_stay() -> None:
    decided, request, notice, choice, referral, update, verdict = (regulation_facts(e) for e in EVENTS)
    assert (
        decided["notice_due"] == "true" and decided["status"] == "decided" and decided["region_code"] == "84"
    )
    assert request["obligation"] == "mandatory" and request["intake_event_id"] == "i-1"
    assert notice["intake_event_id"] == "i-1" and notice["channel"] == "in_person"
    assert (choice["choice"], choice["consent_to_share"]) == ("switch", "true")
    assert referral["requester_org_id"] == "cep-r84" and referral["referral_id"] == REFERRAL
    assert update == {"referral_id": REFERRAL, "status": "declined"}  # not who stated it: the recipient
    assert (verdict["verdict"], verdict["status"], verdict["referral_id"]) == (
        "applied",
        "declined",
        REFERRAL,
    )


def test_the_routers_reason_on_a_refused_verdict_stays() -> None:
    refused = EVENTS[-1].model_copy(update={"verdict": UpdateVerdict.REFUSED, "reason_code": "wrong_actor"})
    assert regulation_facts(refused)["reason_code"] == "wrong_actor"
    assert "reason_code" not in regulation_facts(EVENTS[-1])  # the partner's own, on an applied one
