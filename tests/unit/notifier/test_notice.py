"""The informed-choice notice: names and contacts, channel wording, public agents, determinism."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from cepbus.contract.models import (
    Channel,
    IntakeRegistered,
    NoticeRequested,
    OrganisationKind,
    Profile,
    new_envelope,
)
from cepbus.reference import ReferenceDataError, load_reference
from services.notifier.notice import RenderedNotice, render_notice
from services.router.rules import RULESET_VERSION, decide

K = OrganisationKind
REF = load_reference()
SPECIALISED = [K.APEC, K.CAP_EMPLOI, K.FRANCE_TRAVAIL, K.MISSION_LOCALE]


def request(
    *,
    inform: list[K],
    rules: list[str] | None = None,
    channel: Channel = Channel.IN_PERSON,
    region: str = "11",
    departement: str = "75",
    operator_kind: K = K.REGIONAL_CEP,
    operator_id: str | None = None,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> NoticeRequested:
    return NoticeRequested(
        envelope=new_envelope(
            NoticeRequested,
            producer_org_id="cep-bus-router",
            person_pseudonym="p-notice-test",
            occurred_at=occurred_at or datetime(2021, 6, 1, 9, tzinfo=UTC),
            event_id=event_id,
        ),
        intake_event_id=str(uuid.uuid4()),
        operator_id=operator_id or f"cep-r{region}",
        operator_kind=operator_kind,
        region_code=region,
        departement_code=departement,
        channel=channel,
        inform=inform,
        rules=rules or ["R-APEC-CADRE"],
        ruleset_version=RULESET_VERSION,
    )


@pytest.mark.parametrize(
    ("region", "departement"), [("11", "75"), ("94", "2A"), ("06", "976"), ("04", "974")]
)
def test_names_every_informed_operator_and_its_contact(region: str, departement: str) -> None:
    notice = render_notice(request(inform=SPECIALISED, region=region, departement=departement), REF)
    for kind in SPECIALISED:
        org = REF.operator_for(kind, region)
        assert org.name in notice.text
        assert org.phone or org.website
        if org.phone:
            assert org.phone in notice.text
        if org.website:
            assert org.website in notice.text
    assert REF.regions[region].name in notice.text
    assert REF.departement(departement).name in notice.text


def test_names_only_the_informed_operators() -> None:
    text = render_notice(request(inform=[K.CAP_EMPLOI]), REF).text
    assert REF.operator_for(K.CAP_EMPLOI, "11").name in text
    for kind in (K.APEC, K.FRANCE_TRAVAIL, K.MISSION_LOCALE):
        assert REF.operator_for(kind, "11").name not in text
    assert "0 809 361 212" not in text


def test_informed_choice_wording() -> None:
    text = render_notice(request(inform=[K.APEC]), REF).text
    assert "choix éclairé" in text
    assert "Liberté de choix de l'accompagnateur" in text
    assert "L6111-6" in text
    assert REF.operator_for(K.REGIONAL_CEP, "11").name in text  # who received the person


@pytest.mark.parametrize(
    ("channel", "wording"),
    [
        (Channel.IN_PERSON, "en présentiel"),
        (Channel.PHONE, "par téléphone"),
        (Channel.VIDEO, "en visioconférence"),
    ],
)
def test_channel_wording(channel: Channel, wording: str) -> None:
    text = render_notice(request(inform=[K.APEC], channel=channel), REF).text
    assert f"accueilli(e) {wording}" in text
    others = {"en présentiel", "par téléphone", "en visioconférence"} - {wording}
    assert not any(other in text for other in others)


def test_public_agent_sentence_only_with_its_rule() -> None:
    sentence = "n'accompagne pas les agents publics"
    with_rule = render_notice(request(inform=[K.APEC], rules=["R-APEC-CADRE", "R-PUBLIC-AGENT"]), REF).text
    without = render_notice(request(inform=[K.APEC], rules=["R-APEC-CADRE"]), REF).text
    assert sentence in with_rule
    assert sentence not in without
    # At the regional operator, a public agent is not offered to "continue" with it.
    assert "Vous pouvez poursuivre avec" not in with_rule
    assert "Vous pouvez poursuivre avec" in without


def test_deterministic_and_hash_matches_hashlib() -> None:
    first = render_notice(request(inform=[K.CAP_EMPLOI, K.APEC]), REF)
    again = render_notice(
        request(
            inform=[K.APEC, K.CAP_EMPLOI, K.APEC],
            occurred_at=datetime(2031, 12, 24, 23, 59, tzinfo=UTC),
            event_id=uuid.uuid4(),
        ),
        REF,
    )
    assert isinstance(first, RenderedNotice)
    assert first == again
    assert first.sha256 == hashlib.sha256(first.text.encode("utf-8")).hexdigest()
    assert len(first.sha256) == 64
    assert "2031" not in again.text and "23:59" not in again.text


def test_different_content_gives_a_different_hash() -> None:
    a = render_notice(request(inform=[K.APEC]), REF)
    b = render_notice(request(inform=[K.APEC], channel=Channel.PHONE), REF)
    assert a.sha256 != b.sha256


def test_no_profile_data_in_the_text() -> None:
    """The notice describes operators' publics generically, never the person's situation."""
    text = render_notice(request(inform=[K.CAP_EMPLOI]), REF).text
    assert "RQTH" not in text
    assert "vous êtes" not in text.lower()


def test_unknown_receiving_operator_falls_back_to_its_kind() -> None:
    text = render_notice(
        request(inform=[K.REGIONAL_CEP], operator_kind=K.APEC, operator_id="apec-paris-15"), REF
    ).text
    assert "par l'Apec" in text
    assert REF.operator_for(K.REGIONAL_CEP, "11").name in text


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"inform": [K.OPCO]}, id="kind-without-contact"),
        pytest.param(
            {"inform": [K.APEC], "region": "11", "departement": "13"}, id="departement-not-in-region"
        ),
    ],
)
def test_reference_errors_are_raised(changes: dict[str, Any]) -> None:
    with pytest.raises(ReferenceDataError):
        render_notice(request(**changes), REF)


def test_end_to_end_from_a_decision() -> None:
    """A cadre with a disability at the regional operator is told of Apec and Cap emploi."""
    intake = IntakeRegistered(
        envelope=new_envelope(
            IntakeRegistered,
            producer_org_id="cep-r53",
            person_pseudonym="p-notice-test",
            occurred_at=datetime(2022, 3, 2, 10, tzinfo=UTC),
        ),
        operator_id="cep-r53",
        operator_kind=K.REGIONAL_CEP,
        region_code="53",
        departement_code="29",
        reception_site="Brest",
        channel=Channel.VIDEO,
        profile=Profile(
            employment_status="private_employee",
            cadre=True,
            young_graduate=False,
            boeth=True,
            birth_year=1970,
            job_seeker=False,
        ),
    )
    decision = decide(intake, REF)
    notice_request = NoticeRequested(
        envelope=new_envelope(NoticeRequested, producer_org_id="cep-bus-router", causation=intake.envelope),
        intake_event_id=str(intake.event_id),
        operator_id=intake.operator_id,
        operator_kind=intake.operator_kind,
        region_code=intake.region_code,
        departement_code=intake.departement_code,
        channel=intake.channel,
        inform=list(decision.inform),
        rules=list(decision.rules),
        ruleset_version=decision.ruleset_version,
    )
    text = render_notice(notice_request, REF).text
    assert "en visioconférence" in text
    assert REF.operator_for(K.APEC, "53").name in text
    assert REF.operator_for(K.CAP_EMPLOI, "53").name in text
    assert "Finistère" in text
