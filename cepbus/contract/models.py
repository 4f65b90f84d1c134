"""pydantic models at the edges, mirroring `schemas/avro` field by field.

The `.avsc` files are the contract; these models add validation (formats, consistency) before
anything is encoded. `tests/unit/test_models_match_schemas.py` proves the two agree.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cepbus.contract.schemas import EVENT_NAMESPACE
from cepbus.trust.ids import EventIds

REGION_CODE = r"^[0-9]{2}$"
DEPARTEMENT_CODE = r"^(?:[0-9]{2}|2[AB]|97[1-6])$"
ORG_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"
#: An id of the reception sites registry (cepbus/reference/data/reception_sites.json).
RECEPTION_SITE_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"

# Bounds of the fields a party controls (issue #23: no single message halts a route). Every string,
# bytes and array field of an event an operator or a partner may write, its envelope and its nested
# records included, has one: `codec.decode` refuses an event over a bound as `invalid_content` naming the
# field and the bound (the consumer dead-letters it, before any handler), and the publishing SDK refuses
# it before sending (`InvalidEvent`). Without them a valid, signed event carrying a megabyte of note was
# copied into outputs too large to send. The `.avsc` field docs state them for other implementations;
# `tests/unit/contract/test_field_bounds.py` fails on a party-written field without one.
#: An id (event, referral, intake, organisation, pseudonym, correlation): the read side's id pattern
#: allows 128 characters (`cepbus/contract/identifiers.py`).
ID_MAX_LENGTH = 128
#: A code (region, département, reason code).
CODE_MAX_LENGTH = 64
#: Free text a person writes: a referral's reason, a status update's note.
TEXT_MAX_LENGTH = 2000
#: The free text naming a reception site (an address line at most).
SITE_TEXT_MAX_LENGTH = 200
#: An Ed25519 signature.
SIGNATURE_MAX_BYTES = 64
#: A sealed contact's ciphertext (HPKE enc and AEAD output of a contact at its bounds: about 3 KiB).
SEALED_CONTACT_MAX_BYTES = 8192
#: A directory key id: 16 lowercase hex characters.
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"

#: Namespace of derived event ids: a service that re-processes an event emits the same ids.
_DERIVED_ID_NAMESPACE = uuid.UUID("5b0e7d7e-6a1e-4b8e-9a59-0c2d6c1e8c11")


class OrganisationKind(enum.StrEnum):
    REGIONAL_CEP = "regional_cep"
    APEC = "apec"
    CAP_EMPLOI = "cap_emploi"
    FRANCE_TRAVAIL = "france_travail"
    MISSION_LOCALE = "mission_locale"
    TRANSITIONS_PRO = "transitions_pro"
    OPCO = "opco"
    SPRO = "spro"
    TRAINING = "training"
    HEALTH_SOCIAL = "health_social"
    OTHER = "other"


#: The five kinds of CEP operator named by Code du travail L6111-6.
CEP_OPERATOR_KINDS = frozenset(
    {
        OrganisationKind.REGIONAL_CEP,
        OrganisationKind.APEC,
        OrganisationKind.CAP_EMPLOI,
        OrganisationKind.FRANCE_TRAVAIL,
        OrganisationKind.MISSION_LOCALE,
    }
)


class Channel(enum.StrEnum):
    IN_PERSON = "in_person"
    PHONE = "phone"
    VIDEO = "video"


class EmploymentStatus(enum.StrEnum):
    PRIVATE_EMPLOYEE = "private_employee"
    SELF_EMPLOYED = "self_employed"
    PUBLIC_AGENT = "public_agent"
    JOB_SEEKER = "job_seeker"
    NOT_EMPLOYED = "not_employed"


class Choice(enum.StrEnum):
    STAY = "stay"
    SWITCH = "switch"
    UNDECIDED = "undecided"


class ReferralStatus(enum.StrEnum):
    REQUESTED = "requested"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    APPOINTMENT_BOOKED = "appointment_booked"
    FIRST_APPOINTMENT_HELD = "first_appointment_held"
    NO_SHOW = "no_show"
    COMPLETED = "completed"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    INTERIM_UPDATE = "interim_update"
    UNKNOWN = "unknown"
    EXPIRED = "expired"  # the bus's own step: unanswered too long (ReferralExpired)


class IntakePurpose(enum.StrEnum):
    DEMISSION_RECONVERSION = "demission_reconversion"
    OTHER = "other"


class DecisionStatus(enum.StrEnum):
    DECIDED = "decided"
    INCOMPLETE = "incomplete"
    REJECTED = "rejected"


class ServiceLevel(enum.StrEnum):
    """Cahier des charges du CEP (arrêté du 29 mars 2019)."""

    LEVEL_1 = "level_1"  # accueil individualisé
    LEVEL_2 = "level_2"  # accompagnement personnalisé


class NoticeObligation(enum.StrEnum):
    """Whether a text obliges the operator to give the notice (Code du travail L6111-6: the regional
    operator informs of the specialised operators); a courtesy notice is informative."""

    MANDATORY = "mandatory"
    INFORMATIVE = "informative"


class UpdateVerdict(enum.StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"


class BreachKind(enum.StrEnum):
    NO_NOTICE_ISSUED = "no_notice_issued"
    NO_CHOICE_RECORDED = "no_choice_recorded"
    CHOICE_UNDECIDED = "choice_undecided"
    OTHER = "other"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(_Frozen):
    event_id: uuid.UUID
    event_type: str = Field(max_length=ID_MAX_LENGTH)
    occurred_at: datetime
    producer_org_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH)
    correlation_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH)
    person_pseudonym: str | None = Field(default=None, min_length=1, max_length=ID_MAX_LENGTH)
    causation_id: str | None = Field(default=None, max_length=ID_MAX_LENGTH)

    @field_validator("occurred_at")
    @classmethod
    def _aware_utc_millis(cls, value: datetime) -> datetime:
        """Avro timestamp-millis: timezone-aware, millisecond precision."""
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)


class Profile(_Frozen):
    employment_status: EmploymentStatus | None = None
    cadre: bool | None = None
    young_graduate: bool | None = None
    boeth: bool | None = None
    birth_year: int | None = Field(default=None, ge=1900, le=2100)
    job_seeker: bool | None = None


class SealedContact(_Frozen):
    """The person's contact sealed to the recipient (`cepbus.contract.contact`): opaque to everyone else."""

    recipient_key_id: str = Field(max_length=16, pattern=KEY_ID_PATTERN)
    # empty only in the ledger's copy (it keeps the digest, not the box); refused empty on the bus
    ciphertext: bytes = Field(max_length=SEALED_CONTACT_MAX_BYTES)
    ciphertext_sha256: bytes = Field(min_length=32, max_length=32)


class Event(_Frozen):
    """Base of every event: the envelope first, then the payload.

    A person event (`person_event`, every event but dead letters and checkpoints) must carry the
    person's pseudonym: it keys the partition and the ledger seals the event under that person's key,
    so an event without one could not be erased."""

    avro_name: ClassVar[str]
    person_event: ClassVar[bool] = True
    envelope: Envelope

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.avro_name = f"{EVENT_NAMESPACE}.{cls.__name__}"

    @field_validator("envelope")
    @classmethod
    def _envelope_names_this_type(cls, envelope: Envelope) -> Envelope:
        if envelope.event_type != cls.avro_name:
            raise ValueError(f"envelope.event_type is {envelope.event_type!r}, expected {cls.avro_name!r}")
        if cls.person_event and not envelope.person_pseudonym:
            raise ValueError(f"{cls.__name__} is about a person: envelope.person_pseudonym is required")
        return envelope

    @property
    def event_id(self) -> uuid.UUID:
        return self.envelope.event_id

    def partition_key(self) -> bytes | None:
        """Person-related events are keyed by pseudonym so one person's events stay in order."""
        person = self.envelope.person_pseudonym
        return person.encode() if person else None


class IntakeRegistered(Event):
    operator_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    operator_kind: OrganisationKind
    region_code: str = Field(max_length=CODE_MAX_LENGTH, pattern=REGION_CODE)
    departement_code: str = Field(max_length=CODE_MAX_LENGTH, pattern=DEPARTEMENT_CODE)
    reception_site: str = Field(min_length=1, max_length=SITE_TEXT_MAX_LENGTH)
    channel: Channel
    profile: Profile
    purpose: IntakePurpose | None = None
    cep_requested_on: date | None = None
    reception_site_id: str | None = Field(default=None, max_length=ID_MAX_LENGTH, pattern=RECEPTION_SITE_ID)

    @field_validator("cep_requested_on")
    @classmethod
    def _reconversion_needs_request_date(cls, requested: date | None, info: Any) -> date | None:
        """The request date is the evidence a démission-reconversion file needs: never left out."""
        if info.data.get("purpose") == IntakePurpose.DEMISSION_RECONVERSION and requested is None:
            raise ValueError("purpose demission_reconversion needs cep_requested_on (the volet CEP evidence)")
        return requested


class NoticeRequested(Event):
    intake_event_id: str
    operator_id: str = Field(pattern=ORG_ID)
    operator_kind: OrganisationKind
    region_code: str = Field(pattern=REGION_CODE)
    departement_code: str = Field(pattern=DEPARTEMENT_CODE)
    channel: Channel
    inform: list[OrganisationKind]  # empty only when the notice says the person is not served here
    rules: list[str] = Field(min_length=1)
    ruleset_version: str
    reference_version: str | None = None
    intake_occurred_at: datetime | None = None  # for the intake-to-notice delay; absent from old events
    obligation: NoticeObligation = NoticeObligation.MANDATORY

    @field_validator("intake_occurred_at")
    @classmethod
    def _intake_time_millis(cls, value: datetime | None) -> datetime | None:
        return None if value is None else Envelope._aware_utc_millis(value)


class NoticeIssued(Event):
    notice_request_id: str
    intake_event_id: str
    operator_id: str = Field(pattern=ORG_ID)
    region_code: str = Field(pattern=REGION_CODE)
    channel: Channel
    inform: list[OrganisationKind]  # empty only when the notice says the person is not served here
    language: str = "fr"
    text: str = Field(min_length=1)
    text_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    obligation: NoticeObligation = NoticeObligation.MANDATORY


class ChoiceRecorded(Event):
    intake_event_id: str = Field(max_length=ID_MAX_LENGTH)
    operator_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    region_code: str = Field(max_length=CODE_MAX_LENGTH, pattern=REGION_CODE)
    choice: Choice
    chosen_operator_kind: OrganisationKind | None = None
    consent_to_share: bool

    @field_validator("chosen_operator_kind")
    @classmethod
    def _switch_names_an_operator(cls, kind: OrganisationKind | None, info: Any) -> OrganisationKind | None:
        choice = info.data.get("choice")
        if choice == Choice.SWITCH and kind is None:
            raise ValueError("a switch must name chosen_operator_kind")
        if choice != Choice.SWITCH and kind is not None:
            raise ValueError("chosen_operator_kind is only for choice=switch")
        return kind


class ReferralRequested(Event):
    referral_id: str = Field(max_length=ID_MAX_LENGTH)
    requester_org_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    recipient_org_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    recipient_kind: OrganisationKind
    region_code: str = Field(max_length=CODE_MAX_LENGTH, pattern=REGION_CODE)
    reason: str = Field(min_length=1, max_length=TEXT_MAX_LENGTH)
    consent_to_share: bool
    shared_profile: Profile | None = None
    sealed_contact: SealedContact | None = None

    @field_validator("shared_profile", "sealed_contact")
    @classmethod
    def _needs_consent(cls, shared: Any, info: Any) -> Any:
        if shared is not None and not info.data.get("consent_to_share"):
            raise ValueError(f"{info.field_name} requires consent_to_share")
        return shared


class ReferralStatusChanged(Event):
    referral_id: str = Field(max_length=ID_MAX_LENGTH)
    status: ReferralStatus
    actor_org_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    reason_code: str | None = Field(default=None, max_length=CODE_MAX_LENGTH)
    note: str | None = Field(default=None, max_length=TEXT_MAX_LENGTH)
    # superseded by the statement signature (header cepbus-signature, cepbus.contract.statements), which
    # covers the update's bytes and names its signer: never filled, kept so that older events decode
    signer_org_id: str | None = Field(default=None, max_length=ID_MAX_LENGTH)
    signature: bytes | None = Field(default=None, max_length=SIGNATURE_MAX_BYTES)


class DeadLetter(Event):
    person_event: ClassVar[bool] = False
    service: str
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    error_class: str
    original_key: bytes | None = None
    original_value: bytes
    original_truncated: bool = False
    original_sha256: str | None = None
    original_size: int | None = None
    replay_of: str | None = None
    original_signature: bytes | None = None


class IntakeDecided(Event):
    """The router's decision on one intake, whatever its status: every decision is recorded."""

    intake_event_id: str
    operator_id: str = Field(pattern=ORG_ID)
    operator_kind: OrganisationKind
    region_code: str = Field(pattern=REGION_CODE)
    departement_code: str = Field(pattern=DEPARTEMENT_CODE)
    status: DecisionStatus
    competent_operator: OrganisationKind | None = None
    inform: list[OrganisationKind]
    notice_due: bool
    rules: list[str] = Field(min_length=1)
    reasons: list[str]
    missing_fields: list[str]
    rejection_reason: str | None = None
    ruleset_version: str
    reference_version: str
    notice_obligation: NoticeObligation | None = None


class ChoiceReminderDue(Event):
    intake_event_id: str
    operator_id: str = Field(pattern=ORG_ID)
    operator_kind: OrganisationKind
    region_code: str = Field(pattern=REGION_CODE)
    notice_issued_at: datetime
    delay_s: int = Field(ge=0)

    @field_validator("notice_issued_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("notice_issued_at must be timezone-aware")
        return value


class ServiceLevelStarted(Event):
    intake_event_id: str = Field(max_length=ID_MAX_LENGTH)
    operator_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    operator_kind: OrganisationKind
    region_code: str = Field(max_length=CODE_MAX_LENGTH, pattern=REGION_CODE)
    level: ServiceLevel
    channel: Channel


class RegulationBreach(Event):
    service_level_event_id: str
    intake_event_id: str
    operator_id: str = Field(pattern=ORG_ID)
    operator_kind: OrganisationKind
    region_code: str = Field(pattern=REGION_CODE)
    breach: BreachKind
    reason: str = Field(min_length=1)
    ruleset_version: str


EVENT_MODELS: dict[str, type[Event]] = {
    model.avro_name: model
    for model in (
        IntakeRegistered,
        NoticeRequested,
        NoticeIssued,
        ChoiceRecorded,
        ReferralRequested,
        ReferralStatusChanged,
        DeadLetter,
        IntakeDecided,
        ChoiceReminderDue,
        ServiceLevelStarted,
        RegulationBreach,
    )
}


# -- closed-loop referrals (issue #4) ------------------------------------------------------------


class ReferralUpdateRejected(Event):
    """The router refused a status update: sent back to the sender (state unchanged)."""

    referral_id: str
    rejected_event_id: str
    sender_org_id: str
    attempted_status: ReferralStatus
    current_status: ReferralStatus | None = None
    reason_code: str = Field(min_length=1)
    detail: str


class ReferralDeadlineBreached(Event):
    """A referral step missed its deadline (business days); once per deadline."""

    referral_id: str
    requester_org_id: str = Field(pattern=ORG_ID)
    recipient_org_id: str = Field(pattern=ORG_ID)
    recipient_kind: OrganisationKind
    region_code: str = Field(pattern=REGION_CODE)
    deadline: str = Field(min_length=1)
    business_days: int = Field(ge=0)
    due_at: datetime
    status_at_breach: ReferralStatus
    owner_org_id: str = Field(pattern=ORG_ID)


class ReferralRegulationAlert(Event):
    """Referral drift: ping-pong between organisations or too many referrals in a window."""

    alert: str = Field(min_length=1)
    referral_id: str
    requester_org_id: str = Field(pattern=ORG_ID)
    recipient_org_id: str = Field(pattern=ORG_ID)
    region_code: str = Field(pattern=REGION_CODE)
    related_referral_ids: list[str]
    referrals_in_window: int = Field(ge=0)
    window_days: int = Field(ge=0)
    detail: str


class ReferralUpdateVerdict(Event):
    """The router's verdict on one status update: what the ledger records instead of the claim."""

    update_event_id: str
    referral_id: str
    verdict: UpdateVerdict
    status: ReferralStatus
    reason_code: str | None = None
    signer_org_id: str | None = None
    signer_key_id: str | None = None
    state_before: ReferralStatus | None = None
    state_after: ReferralStatus | None = None
    claimed_occurred_at: datetime
    signed_update: bytes | None = None
    update_digest: bytes | None = None

    @field_validator("claimed_occurred_at")
    @classmethod
    def _claimed_millis(cls, value: datetime) -> datetime:
        return Envelope._aware_utc_millis(value)


class RefusalReason(enum.StrEnum):
    """Why a recipient declines a referral: the national list (`fr.cepbus.RefusalReason.avsc`), the only
    `reason_code` a decline may carry; `OTHER` needs a message for the requester."""

    PERSON_UNREACHABLE = "person_unreachable"
    DID_NOT_ATTEND_INTERVIEW = "did_not_attend_interview"
    IN_EMPLOYMENT = "in_employment"
    IN_TRAINING = "in_training"
    NOT_ELIGIBLE = "not_eligible"
    NOT_MOBILE = "not_mobile"
    NOT_INTERESTED = "not_interested"
    SESSION_FULL = "session_full"
    OUT_OF_AREA = "out_of_area"
    DUPLICATE = "duplicate"
    OTHER = "other"


#: The label each refusal reason is shown with (the partners' and the requesters' pages, the emails).
REFUSAL_REASON_LABELS: dict[RefusalReason, str] = {
    RefusalReason.PERSON_UNREACHABLE: "Personne injoignable",
    RefusalReason.DID_NOT_ATTEND_INTERVIEW: "Ne s'est pas présentée à l'entretien",
    RefusalReason.IN_EMPLOYMENT: "En emploi",
    RefusalReason.IN_TRAINING: "En formation",
    RefusalReason.NOT_ELIGIBLE: "Ne remplit pas les critères d'éligibilité",
    RefusalReason.NOT_MOBILE: "Pas mobile",
    RefusalReason.NOT_INTERESTED: "Pas intéressée",
    RefusalReason.SESSION_FULL: "Session complète, pas de place",
    RefusalReason.OUT_OF_AREA: "Hors du territoire",
    RefusalReason.DUPLICATE: "Doublon",
    RefusalReason.OTHER: "Autre (message obligatoire)",
}


class ReminderKind(enum.StrEnum):
    DEADLINE_TOMORROW = "deadline_tomorrow"  # the working day before a pending deadline
    UNANSWERED = "unanswered"  # every N days without an answer
    OTHER = "other"  # the Avro enum's default, for readers of a later symbol


class ReferralReminderDue(Event):
    """The router reminds a referral's recipient before a deadline, or of a referral left unanswered."""

    referral_id: str = Field(max_length=ID_MAX_LENGTH)
    requester_org_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    recipient_org_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    recipient_kind: OrganisationKind
    region_code: str = Field(max_length=CODE_MAX_LENGTH, pattern=REGION_CODE)
    reminder: ReminderKind
    deadline: str | None = Field(default=None, max_length=CODE_MAX_LENGTH)
    due_at: datetime | None = None
    days_waiting: int = Field(ge=0)
    status: ReferralStatus


class ReferralExpired(Event):
    """The router closes a referral left unanswered for the recipient kind's number of days."""

    referral_id: str = Field(max_length=ID_MAX_LENGTH)
    requester_org_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    recipient_org_id: str = Field(max_length=ID_MAX_LENGTH, pattern=ORG_ID)
    recipient_kind: OrganisationKind
    region_code: str = Field(max_length=CODE_MAX_LENGTH, pattern=REGION_CODE)
    status_at_expiry: ReferralStatus
    expired_after_days: int = Field(ge=0)
    received_at: datetime


EVENT_MODELS.update(
    {
        model.avro_name: model
        for model in (
            ReferralReminderDue,
            ReferralExpired,
            ReferralUpdateRejected,
            ReferralDeadlineBreached,
            ReferralRegulationAlert,
            ReferralUpdateVerdict,
        )
    }
)


def new_envelope(
    event_type: type[Event],
    *,
    producer_org_id: str,
    correlation_id: str | None = None,
    person_pseudonym: str | None = None,
    causation: Envelope | None = None,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """An envelope for a new event; a derived event inherits correlation and person from its cause."""
    if causation is not None:
        correlation_id = correlation_id or causation.correlation_id
        person_pseudonym = person_pseudonym or causation.person_pseudonym
    new_id = event_id or uuid.uuid4()
    return Envelope(
        event_id=new_id,
        event_type=event_type.avro_name,
        occurred_at=occurred_at or datetime.now(UTC),
        producer_org_id=producer_org_id,
        correlation_id=correlation_id or str(new_id),
        person_pseudonym=person_pseudonym,
        causation_id=str(causation.event_id) if causation else None,
    )


def derived_envelope(
    event_type: type[Event], cause: Event, purpose: str, *, producer_org_id: str, ids: EventIds
) -> Envelope:
    """The envelope of an event a service derives from `cause`: same journey and person, and an id
    that the same cause and purpose always give again, keyed with the service's secret (`ids`) so
    that nobody else can compute it before the service emits it."""
    return new_envelope(
        event_type,
        producer_org_id=producer_org_id,
        causation=cause.envelope,
        event_id=ids.derive(cause.event_id, purpose),
    )


def derived_event_id(cause: uuid.UUID | str, purpose: str) -> uuid.UUID:
    """A deterministic id anyone can compute (uuid5): for an organisation's own events (the partner
    SDK's updates, the demo), whose dedupe is scoped to their producer. Services use keyed ids
    (`cepbus.trust.ids.EventIds`)."""
    return uuid.uuid5(_DERIVED_ID_NAMESPACE, f"{cause}/{purpose}")


class CheckpointPublished(Event):
    """A signed ledger checkpoint, on the checkpoint topic; the signed note is the authority."""

    person_event: ClassVar[bool] = False

    origin: str = Field(min_length=1)
    tree_size: int = Field(ge=1)
    root_hash_b64: str = Field(pattern=r"^[A-Za-z0-9+/]{43}=$")
    signed_note: str = Field(min_length=1)

    def partition_key(self) -> bytes | None:
        """Keyed by origin: one log's checkpoints stay in order."""
        return self.origin.encode()


EVENT_MODELS[CheckpointPublished.avro_name] = CheckpointPublished
