"""Small builders for test events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from cepbus.models import Channel, IntakeRegistered, OrganisationKind, Profile, new_envelope

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
