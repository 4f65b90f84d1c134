"""Small builders for test events: intakes, referrals and status updates (signed, as every event, by
the statement signature the publisher or `tests.support.authorship` adds when it is sent or admitted)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from cepbus.contract import codec
from cepbus.contract.models import (
    Channel,
    Choice,
    ChoiceRecorded,
    DeadLetter,
    Event,
    IntakeRegistered,
    OrganisationKind,
    Profile,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    new_envelope,
)

S = ReferralStatus

EMPLOYEE = dict(
    employment_status="private_employee",
    cadre=False,
    young_graduate=False,
    boeth=False,
    birth_year=1980,
    job_seeker=False,
)


def intake(
    *,
    person: str | None = None,
    region: str = "11",
    departement: str = "75",
    operator_kind: OrganisationKind = OrganisationKind.REGIONAL_CEP,
    operator_id: str | None = None,
    occurred_at: datetime | None = None,
    **profile: Any,
) -> IntakeRegistered:
    kind_prefix = {
        OrganisationKind.REGIONAL_CEP: "cep",
        OrganisationKind.APEC: "apec",
        OrganisationKind.CAP_EMPLOI: "cap-emploi",
        OrganisationKind.FRANCE_TRAVAIL: "france-travail",
        OrganisationKind.MISSION_LOCALE: "mission-locale",
    }[operator_kind]
    org = operator_id or f"{kind_prefix}-r{region}"
    return IntakeRegistered(
        envelope=new_envelope(
            IntakeRegistered,
            producer_org_id=org,
            person_pseudonym=person or f"p-{uuid.uuid4().hex[:16]}",
            occurred_at=occurred_at or datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        ),
        operator_id=org,
        operator_kind=operator_kind,
        region_code=region,
        departement_code=departement,
        reception_site="Site de test",
        channel=Channel.IN_PERSON,
        profile=Profile(**{**EMPLOYEE, **profile}),
    )


# -- referrals ----------------------------------------------------------------------------------

REQUESTER, RECIPIENT = "cep-r11", "apec-r11"
# Monday 2 March 2026, 10:00 Paris; no public holiday in the following three weeks.
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def referral(
    requester: str = REQUESTER,
    recipient: str = RECIPIENT,
    person: str | None = None,
    at: datetime = MONDAY,
    kind: OrganisationKind = OrganisationKind.APEC,
) -> ReferralRequested:
    return ReferralRequested(
        envelope=new_envelope(
            ReferralRequested,
            producer_org_id="cep-bus-router",
            person_pseudonym=person or "p-test",
            occurred_at=at,
        ),
        referral_id=str(uuid.uuid4()),
        requester_org_id=requester,
        recipient_org_id=recipient,
        recipient_kind=kind,
        region_code="11",
        reason="test",
        consent_to_share=False,
    )


def update(
    ref: ReferralRequested,
    status: S,
    sender: str = RECIPIENT,
    reason_code: str | None = None,
    *,
    at: datetime | None = None,
) -> ReferralStatusChanged:
    """An update of `ref` by `sender`. It carries no in-body signature (those fields are superseded):
    who signs it is the statement signature's business (`tests.support.authorship`, `key_of` there)."""
    return ReferralStatusChanged(
        envelope=new_envelope(
            ReferralStatusChanged, producer_org_id=sender, causation=ref.envelope, occurred_at=at or MONDAY
        ),
        referral_id=ref.referral_id,
        status=status,
        actor_org_id=sender,
        reason_code=reason_code,
    )


# -- ids the services derive (keyed with the development key the test bus runs on) ---------------


def service_id(cause: object, *purposes: str) -> str:
    """The id a service derives from `cause` through `purposes` in turn (e.g. notice-requested, then
    notice-issued), as the services do with the development id key."""
    from cepbus.trust.ids import DEVELOPMENT_IDS

    current = cause
    for purpose in purposes:
        current = DEVELOPMENT_IDS.derive(current, purpose)  # type: ignore[arg-type]
    return str(current)


def switch_choice(of: IntakeRegistered, to: OrganisationKind = OrganisationKind.CAP_EMPLOI) -> ChoiceRecorded:
    """The person of `of` chooses another operator (`to`) and consents to share: a referral follows."""
    return ChoiceRecorded(
        envelope=new_envelope(ChoiceRecorded, producer_org_id=of.operator_id, causation=of.envelope),
        intake_event_id=str(of.event_id),
        operator_id=of.operator_id,
        region_code=of.region_code,
        choice=Choice.SWITCH,
        chosen_operator_kind=to,
        consent_to_share=True,
    )


def dead_letter_of(
    original: Event,
    source_topic: str,
    *,
    reason: str = "handler_error: test",
    error_class: str = "RuntimeError",
    producer_org_id: str = "cep-bus-router",
    key: bytes | None = None,
    offset: int = 7,
    **fields: Any,
) -> DeadLetter:
    """A dead letter the router wrote of `original` (read from `source_topic`), keeping its bytes."""
    return DeadLetter(
        envelope=new_envelope(DeadLetter, producer_org_id=producer_org_id),
        service="router",
        source_topic=source_topic,
        source_partition=0,
        source_offset=offset,
        reason=reason,
        error_class=error_class,
        original_key=key if key is not None else original.partition_key(),
        original_value=codec.encode(original),
        **fields,
    )
