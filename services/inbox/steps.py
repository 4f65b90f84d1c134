"""What the inbox offers and refuses, from the read side's answer alone, and the updates it prepares.

The lifecycle is the router's (`services/router/referrals/machine.py`); the read side hands each
referral's allowed `steps` (event, owning party, required codes) out with it, so the inbox needs no
copy of the table and may not import the router. `refusal` applies them in the machine's order and with
its reason codes (`terminal_state`, `not_allowed`, `wrong_actor`, `bad_reason_code`,
`reason_needs_message`): what the inbox refuses, the router would have refused, with the same reason;
what it lets through, the router applies unless the referral moved in between (then the router refuses
it, and the page shows the state unmoved).

French labels for the pages live here too: the users are French partner staff; codes stay English.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cepbus.contract import codec
from cepbus.contract.models import (
    REFUSAL_REASON_LABELS,
    TEXT_MAX_LENGTH,
    Envelope,
    OrganisationKind,
    ReferralStatus,
    ReferralStatusChanged,
    RefusalReason,
    derived_event_id,
)
from cepbus.contract.readside import ReferralParty, ReferralView, StepView
from cepbus.contract.schemas import event_schema
from cepbus.reference.calendar import deadline_last_day

S = ReferralStatus

# The label tables are keyed by the contract's enums; a StrEnum member is its string, so a status read
# as a string (a form field) finds its label as well.
STATUS_LABELS: dict[str, str] = {
    S.REQUESTED: "Demandée",
    S.RECEIVED: "Reçue",
    S.ACCEPTED: "Acceptée",
    S.DECLINED: "Refusée",
    S.APPOINTMENT_BOOKED: "Rendez-vous fixé",
    S.FIRST_APPOINTMENT_HELD: "Premier rendez-vous tenu",
    S.NO_SHOW: "Absence au rendez-vous",
    S.COMPLETED: "Terminée",
    S.CANCEL_REQUESTED: "Annulation demandée",
    S.CANCELLED: "Annulée",
    S.INTERIM_UPDATE: "Point d'étape",
    S.EXPIRED: "Expirée (sans réponse dans les délais)",
}
#: The button of each step (what the person does).
ACTION_LABELS: dict[str, str] = {
    S.RECEIVED: "Accuser réception",
    S.ACCEPTED: "Accepter",
    S.DECLINED: "Refuser",
    S.APPOINTMENT_BOOKED: "Rendez-vous fixé",
    S.FIRST_APPOINTMENT_HELD: "Premier rendez-vous tenu",
    S.NO_SHOW: "Absence au rendez-vous",
    S.COMPLETED: "Clore l'accompagnement",
    S.CANCEL_REQUESTED: "Demander l'annulation",
    S.CANCELLED: "Confirmer l'annulation",
    S.INTERIM_UPDATE: "Point d'étape",
}
CODE_LABELS: dict[str, str] = {
    # reasons of a decline: the national list, with the contract's labels (`other` is shared with the
    # outcomes below, where no message is required: its own label)
    **{reason.value: text for reason, text in REFUSAL_REASON_LABELS.items() if reason != RefusalReason.OTHER},
    # outcomes of a completion
    "accompaniment_engaged": "Accompagnement engagé",
    "training_started": "Entrée en formation",
    "project_validated": "Projet validé",
    "redirected": "Réorientation",
    "person_withdrew": "Abandon de la personne",
    # both
    "no_show": "Absence de la personne",
    "other": "Autre",
}
#: A decline's reasons, the national list, as the decline form and the export name them (`other` with the
#: contract's label on the form, which says a comment is needed).
DECLINE_LABELS: dict[str, str] = {reason.value: text for reason, text in REFUSAL_REASON_LABELS.items()}
_NATIONAL_ORDER = {reason.value: n for n, reason in enumerate(RefusalReason)}
#: The kinds of organisation of the directory (as the audit report names them).
KIND_LABELS: dict[str, str] = {
    OrganisationKind.REGIONAL_CEP: "Opérateur régional CEP",
    OrganisationKind.APEC: "Apec",
    OrganisationKind.CAP_EMPLOI: "Cap emploi",
    OrganisationKind.FRANCE_TRAVAIL: "France Travail",
    OrganisationKind.MISSION_LOCALE: "Mission locale",
    OrganisationKind.TRANSITIONS_PRO: "Transitions Pro",
    OrganisationKind.OPCO: "OPCO",
    OrganisationKind.SPRO: "SPRO (orientation régionale)",
    OrganisationKind.TRAINING: "Organisme de formation",
    OrganisationKind.HEALTH_SOCIAL: "Partenaire santé-social",
    OrganisationKind.OTHER: "Autre",
}
#: The label of the code list of a coded step.
CODE_FIELD_LABELS: dict[str, str] = {S.DECLINED: "Motif du refus", S.COMPLETED: "Issue de l'accompagnement"}
DEADLINE_LABELS: dict[str, str] = {
    "received": "Accusé de réception",
    "answered": "Réponse (acceptation ou refus)",
    "first_appointment": "Premier rendez-vous",
}
REFUSAL_TEXTS: dict[str, str] = {
    "not_a_party": "Votre organisation n'est pas partie à cette orientation.",
    "terminal_state": "Cette orientation est close : aucune étape n'est plus acceptée.",
    "not_allowed": "Cette étape n'est pas possible depuis l'état actuel de l'orientation.",
    "wrong_actor": "Cette étape revient à l'autre partie de l'orientation.",
    "bad_reason_code": "Cette étape demande un motif de la liste.",
    "reason_needs_message": "Un refus pour le motif « Autre » demande un commentaire pour le prescripteur.",
    "bad_note": "Le commentaire est trop long (2 000 caractères au plus) ou contient des caractères de "
    "contrôle.",
    # refusals only the router can give (it judges after the bus, the inbox before)
    "unknown_referral": "Le routeur ne connaît pas cette orientation.",
    "replayed_event_id": "Cet identifiant d'étape a déjà servi à une autre mise à jour.",
}
#: Notes are signed and kept in the ledger (sealed): printable text and line breaks, as long as the
#: contract lets a note be (2,000 characters: a decline for « Autre » is explained in it).
NOTE_MAX = TEXT_MAX_LENGTH

_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def label(labels: dict[str, str], code: str | None) -> str:
    """The French label of a code; an unknown code (a newer router) is shown as it is."""
    return "" if code is None else labels.get(code, code)


@dataclass(frozen=True)
class Offer:
    """A step the organisation may take now, as a form of the referral page."""

    event: str
    action: str  # the button
    codes: tuple[tuple[str, str], ...]  # (code, label) when the step needs one
    code_label: str
    with_note: bool


@dataclass(frozen=True)
class Refusal:
    code: str  # the router's reason code
    text: str  # for the page, in French


def role_of(view: ReferralView, org_id: str) -> ReferralParty | None:
    """The organisation's party in the referral, or None."""
    if view.referral.recipient_org_id == org_id:
        return ReferralParty.RECIPIENT
    if view.referral.requester_org_id == org_id:
        return ReferralParty.REQUESTER
    return None


def offers(view: ReferralView, org_id: str) -> list[Offer]:
    """The steps the read side allows from the current state that belong to the organisation."""
    role = role_of(view, org_id)
    if role is None or not view.referral.open:
        return []
    out = []
    for step in view.steps:
        if step.actor != role:
            continue
        event = step.event.value
        if step.event == S.DECLINED:  # the national list in its own order (« Autre » last), then the rest
            last = len(_NATIONAL_ORDER)
            ordered = sorted(step.codes, key=lambda code: (_NATIONAL_ORDER.get(code, last), code))
            codes = tuple((code, label(DECLINE_LABELS, code)) for code in ordered)
        else:
            codes = tuple((code, label(CODE_LABELS, code)) for code in step.codes)
        with_note = bool(codes) or step.event == S.INTERIM_UPDATE
        out.append(
            Offer(event, label(ACTION_LABELS, event), codes, label(CODE_FIELD_LABELS, event), with_note)
        )
    return out


def step_for(view: ReferralView, event: str) -> StepView | None:
    """The step the read side allows from the current state for `event` (a form field), if any."""
    return next((step for step in view.steps if step.event == event), None)


def refusal(
    view: ReferralView, org_id: str, event: str, reason_code: str | None, note: str | None = None
) -> Refusal | None:
    """Why the router would refuse `event` from the organisation now (its reason code), or None."""

    def refused(code: str) -> Refusal:
        return Refusal(code, REFUSAL_TEXTS[code])

    role = role_of(view, org_id)
    if role is None:
        return refused("not_a_party")
    if not view.referral.open:
        return refused("terminal_state")
    step = step_for(view, event)
    if step is None:
        return refused("not_allowed")
    if step.actor != role:
        return refused("wrong_actor")
    if step.codes and reason_code not in step.codes:
        return refused("bad_reason_code")
    if event == S.DECLINED and reason_code == RefusalReason.OTHER and not (note or "").strip():
        return refused("reason_needs_message")
    if note is not None and (len(note) > NOTE_MAX or not note.replace("\n", "").isprintable()):
        return refused("bad_note")
    return None


def attempt(view: ReferralView, org_id: str, event: str) -> int:
    """1 + how many times the organisation already took this step on this referral (a second booking
    after a no-show is a new update, as in the partner SDK)."""
    taken = [h for h in view.history if h.status == event and h.actor_org_id == org_id]
    return len(taken) + 1


def draft(
    view: ReferralView,
    org_id: str,
    event: str,
    reason_code: str | None,
    note: str | None,
    now: datetime,
) -> ReferralStatusChanged:
    """The unsigned update the organisation will sign: its id derived as the partner SDK derives it
    (referral, organisation, status, attempt), so that re-sending a step is the same update; the
    envelope continues the referral's journey (correlation, person, the request as cause); the in-body
    `signer_org_id` and `signature` stay empty, as the SDK leaves them (the statement's signature,
    beside the event, covers its exact bytes), so that both make the same update."""
    record = view.referral
    n = attempt(view, org_id, event)
    purpose = f"status:{org_id}:{event}" + (f":{n}" if n > 1 else "")
    referral_id = record.referral_id
    envelope = Envelope(
        event_id=derived_event_id(referral_id, purpose),
        event_type=ReferralStatusChanged.avro_name,
        occurred_at=now,
        producer_org_id=org_id,
        correlation_id=record.correlation_id,
        person_pseudonym=record.person_pseudonym,
        causation_id=record.request_event_id,
    )
    return ReferralStatusChanged(
        envelope=envelope,
        referral_id=referral_id,
        status=ReferralStatus(event),
        actor_org_id=org_id,
        reason_code=reason_code,
        note=note or None,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def writer_fingerprint() -> str:
    """The CRC-64-AVRO fingerprint (hex) of the schema a status update is written with: the page's
    script encodes under it, and refuses to sign when it is not the one it knows."""
    return event_schema(ReferralStatusChanged.avro_name).fingerprint.hex()


def statement_of(update: ReferralStatusChanged) -> bytes:
    """The update's statement, its Avro single-object bytes (fastavro): what the page rebuilds and signs,
    and what the Publisher sends."""
    return codec.encode(update)


def browser_fields(update: ReferralStatusChanged) -> dict[str, Any]:
    """The update as the page's script reads it to rebuild its Avro bytes itself (static/statement.js):
    every field of the record, in the schema's order, the time as integer milliseconds (as on the wire:
    floored, as fastavro writes a `timestamp-millis`)."""
    e = update.envelope
    return {
        "envelope": {
            "event_id": str(e.event_id),
            "event_type": e.event_type,
            "occurred_at": (e.occurred_at - _EPOCH) // _MILLISECOND,
            "producer_org_id": e.producer_org_id,
            "correlation_id": e.correlation_id,
            "person_pseudonym": e.person_pseudonym,
            "causation_id": e.causation_id,
        },
        "referral_id": update.referral_id,
        "status": update.status.value,
        "actor_org_id": update.actor_org_id,
        "reason_code": update.reason_code,
        "note": update.note,
        "signer_org_id": update.signer_org_id,
        "signature": None if update.signature is None else update.signature.hex(),
    }


def update_from_fields(fields: dict[str, Any]) -> ReferralStatusChanged:
    """The inverse of `browser_fields` (tests, and anyone checking what a page signed)."""
    e = fields["envelope"]
    signature = fields.get("signature")
    return ReferralStatusChanged(
        envelope=Envelope(
            event_id=uuid.UUID(e["event_id"]),
            event_type=e["event_type"],
            occurred_at=_EPOCH + e["occurred_at"] * _MILLISECOND,
            producer_org_id=e["producer_org_id"],
            correlation_id=e["correlation_id"],
            person_pseudonym=e["person_pseudonym"],
            causation_id=e["causation_id"],
        ),
        referral_id=fields["referral_id"],
        status=ReferralStatus(fields["status"]),
        actor_org_id=fields["actor_org_id"],
        reason_code=fields["reason_code"],
        note=fields["note"],
        signer_org_id=fields["signer_org_id"],
        signature=None if signature is None else bytes.fromhex(signature),
    )


# -- dates ------------------------------------------------------------------------------------------


def _local(ms: int, zone: ZoneInfo) -> datetime:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).astimezone(zone)


def french_datetime(ms: int | None, zone: ZoneInfo) -> str:
    """`12/05/2026 à 09:30` in the region's time."""
    if ms is None:
        return ""
    at = _local(ms, zone)
    return f"{at:%d/%m/%Y} à {at:%H:%M}"


def french_date(ms: int | None, zone: ZoneInfo) -> str:
    """`12/05/2026` in the region's time."""
    return "" if ms is None else f"{_local(ms, zone):%d/%m/%Y}"


def french_due_day(due_at_ms: int | None, zone: ZoneInfo) -> str:
    """The last day of a deadline: the router's deadlines end at local midnight after that day."""
    if due_at_ms is None:
        return ""
    last = deadline_last_day(due_at_ms, zone)
    return f"{_DAYS[last.weekday()]} {last.day} {_MONTHS[last.month - 1]} {last.year}"
