"""Evidence for the "volet CEP" of a démission-reconversion file, from the router's store.

Transitions Pro checks that the person requested the CEP before the resignation took effect
(Code du travail L5422-1-1, R5422-2-1); the intake carries the request date, the router keeps it with
the decision, the notice, the choice and the levels of service, and this module puts them together.
Pure apart from reading the store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cepbus.contract.models import IntakePurpose
from cepbus.reference import ReferenceData, ReferenceDataError
from services.router.store import IntakeRecord, RouterStore

__all__ = ["volet_cep_evidence"]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _operator_name(record: IntakeRecord, reference: ReferenceData) -> str | None:
    try:
        return reference.organisation(record.operator_id).name
    except ReferenceDataError:
        return None


def _intake_evidence(record: IntakeRecord, store: RouterStore, reference: ReferenceData) -> dict[str, Any]:
    intake_id = record.intake_event_id
    return {
        "intake_event_id": intake_id,
        "purpose": record.purpose,
        "cep_requested_on": record.cep_requested_on.isoformat() if record.cep_requested_on else None,
        "intake_at": _iso(record.occurred_at_ms),
        "operator_id": record.operator_id,
        "operator_name": _operator_name(record, reference),
        "operator_kind": record.operator_kind.value,
        "region_code": record.region_code,
        "departement_code": record.departement_code,
        "decision_status": record.status,
        "rules": list(record.rules),
        "ruleset_version": record.ruleset_version,
        "reference_version": record.reference_version,
        "notices_issued_at": [_iso(ms) for ms in store.notices_at_ms(intake_id)],
        "choices": [
            {
                "choice": c.choice.value,
                "chosen_operator_kind": c.chosen_operator_kind.value if c.chosen_operator_kind else None,
                "at": _iso(c.occurred_at_ms),
            }
            for c in store.choices(intake_id)
        ],
        "service_levels": [
            {
                "level": s.level.value,
                "at": _iso(s.occurred_at_ms),
                "breach": s.breach.value if s.breach else None,
            }
            for s in store.service_levels(intake_id)
        ],
    }


def volet_cep_evidence(
    store: RouterStore, reference: ReferenceData, person_pseudonym: str, *, every_purpose: bool = False
) -> dict[str, Any]:
    """The person's démission-reconversion intakes (every intake with `every_purpose`), oldest first,
    each with the CEP request date and what followed it."""
    records = [
        record
        for record in store.intakes_of(person_pseudonym)
        if every_purpose or record.purpose == IntakePurpose.DEMISSION_RECONVERSION.value
    ]
    return {
        "person_pseudonym": person_pseudonym,
        "intakes": [_intake_evidence(record, store, reference) for record in records],
    }
