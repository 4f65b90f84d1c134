"""The example events of the golden vectors: three journeys and two technical events, every field fixed
(ids, times, texts) so that `cep-bus vectors` rewrites the same bytes until the contract changes.

The journeys: a cadre received by the regional operator of Bourgogne-Franche-Comté in Besançon who
chooses Apec (the regulation loop, then the referral and its status updates), an intake in
Seine-Saint-Denis that says nothing optional, and a level-2 start in Guadeloupe without a recorded choice
(reminder, breach); then the ledger's checkpoint and a dead letter. Each event is built by one function
from the events it derives from, as the services would derive it.

Every event's statement is signed by a test key of its producer (`statement_test_key`), alone (a batch
of one) and, for the `BATCHES`, together with others of the same producer, so that an implementer
checks its Merkle path code on paths of several lengths.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.contract import codec
from cepbus.contract.models import (
    BreachKind,
    Channel,
    CheckpointPublished,
    Choice,
    ChoiceRecorded,
    ChoiceReminderDue,
    DeadLetter,
    DecisionStatus,
    EmploymentStatus,
    Envelope,
    Event,
    IntakeDecided,
    IntakePurpose,
    IntakeRegistered,
    NoticeIssued,
    NoticeObligation,
    NoticeRequested,
    OrganisationKind,
    Profile,
    ReferralDeadlineBreached,
    ReferralExpired,
    ReferralRegulationAlert,
    ReferralReminderDue,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateRejected,
    ReferralUpdateVerdict,
    RegulationBreach,
    ReminderKind,
    ServiceLevel,
    ServiceLevelStarted,
    UpdateVerdict,
    new_envelope,
)
from cepbus.contract.statements import StatementSigner, statement_digest
from cepbus.trust.keys import key_id, raw_public_key
from cepbus_app.vectors.sealed import example_sealed_contact

__all__ = [
    "BATCHES",
    "STATEMENT_KEY_TAG",
    "TEST_KEY_TAG",
    "TEST_SEED",
    "Batch",
    "Example",
    "examples",
    "statement_test_key",
    "statement_test_seed",
    "statement_test_signer",
    "vector_test_key",
]

#: TEST KEY, PUBLIC ON PURPOSE: the seed is SHA-256 of this tag, so anyone can sign with it. It signs
#: the vectors' checkpoint note and nothing else; it is no development key (`cepbus.trust.development`)
#: and no directory lists it, so the bus refuses what it signs.
TEST_KEY_TAG = b"cep-bus golden-vector test key v1"
TEST_SEED = hashlib.sha256(TEST_KEY_TAG).digest()
#: TEST KEYS, PUBLIC ON PURPOSE: an organisation's statement test key has the seed SHA-256 of this tag
#: followed by its id. They sign the vectors' statements and nothing else; no directory lists them (they
#: are not the development keys of `cepbus.trust.development`), so the bus refuses what they sign.
STATEMENT_KEY_TAG = b"cep-bus golden-vector statement key v1:"

_ROUTER, _NOTIFIER, _LEDGER = "cep-bus-router", "cep-bus-notifier", "cep-bus-ledger"
_RULESET, _REFERENCE = "2020-2023.1", "2020-2023.1"
_LEDGER_ORIGIN = "cep-bus.local/ledger"

_BESANCON_PERSON = "p-7c1e4b9a2f3d5086"
_GUADELOUPE_PERSON = "p-51a8e03c9d2b7f64"
_REFERRAL_ID = "3c8f1a6d-5e27-4b90-a4d3-0b6e9c2f7a18"
_GUADELOUPE_INTAKE_ID = "2f7c0b4e-9d31-4a86-b5e2-c1a7f8d3e069"
_BESANCON_RULES = ("R-APEC-CADRE", "R-REGIONAL-COMPETENT", "R-NO-SELF-INFORM", "R-COMPETENT-CURRENT")


def vector_test_key() -> Ed25519PrivateKey:
    """The vectors' checkpoint note key (see `TEST_KEY_TAG`)."""
    return Ed25519PrivateKey.from_private_bytes(TEST_SEED)


def statement_test_seed(org_id: str) -> bytes:
    """The 32-byte seed of `org_id`'s statement test key (see `STATEMENT_KEY_TAG`)."""
    return hashlib.sha256(STATEMENT_KEY_TAG + org_id.encode()).digest()


def statement_test_key(org_id: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(statement_test_seed(org_id))


def statement_test_signer(org_id: str) -> StatementSigner:
    """`org_id`'s statement signer with its test key, under the key id a directory would give it."""
    key = statement_test_key(org_id)
    return StatementSigner(org_id, key_id(org_id, raw_public_key(key)), key)


@dataclass(frozen=True)
class Example:
    """One vector's event, with a stable name and what it exercises."""

    name: str
    description: str
    event: Event


@dataclass(frozen=True)
class Batch:
    """Examples of one producer signed together, in this order (as its outbox relay would send them)."""

    name: str
    description: str
    members: tuple[str, ...]


#: The batch vectors (`statement-batches.json`): sizes 5 and 3, whose RFC 9162 trees are unbalanced, so
#: the paths have several lengths (3 and 1 for five leaves; 2 and 1 for three).
BATCHES = (
    Batch(
        "router-batch-of-5",
        "the router's Besançon outputs, signed as one batch of five",
        (
            "besancon-decided",
            "besancon-notice-requested",
            "besancon-referral-to-apec",
            "besancon-ping-pong",
            "besancon-update-rejected",
        ),
    ),
    Batch(
        "router-batch-of-3",
        "a deadline breach and the Guadeloupe reminder and breach, signed as one batch of three",
        ("besancon-first-appointment-late", "guadeloupe-choice-reminder", "guadeloupe-breach"),
    ),
)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _envelope(
    model: type[Event],
    event_id: str,
    at: str,
    producer: str,
    *,
    cause: Event | None = None,
    person: str | None = None,
) -> Envelope:
    """A new envelope; derived from `cause` (same journey and person, causation id set) when given."""
    return new_envelope(
        model,
        producer_org_id=producer,
        event_id=uuid.UUID(event_id),
        occurred_at=_at(at),
        person_pseudonym=person,
        causation=cause.envelope if cause else None,
    )


def _checkpoint_note(origin: str, size: int, root: bytes, key: Ed25519PrivateKey) -> str:
    """A C2SP signed note of a tlog checkpoint (as `services/ledger/note.py` writes one)."""
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = hashlib.sha256(origin.encode() + b"\n\x01" + public).digest()[:4]
    blob = base64.b64encode(kid + key.sign(text.encode())).decode()
    return f"{text}\n\u2014 {origin} {blob}\n"


# -- Besançon: the regulation loop ---------------------------------------------------------------


def _cadre_profile() -> Profile:
    return Profile(
        employment_status=EmploymentStatus.PRIVATE_EMPLOYEE,
        cadre=True,
        young_graduate=False,
        boeth=False,
        birth_year=1984,
        job_seeker=False,
    )


def _besancon_intake(profile: Profile) -> IntakeRegistered:
    return IntakeRegistered(
        envelope=_envelope(
            IntakeRegistered,
            "6f1c2b8e-4a7d-4e3b-9c15-2d8a0f6b7e41",
            "2026-03-02T10:00:00Z",
            "cep-r27",
            person=_BESANCON_PERSON,
        ),
        operator_id="cep-r27",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="27",
        departement_code="25",
        reception_site="Point d'accueil CEP de Besançon",
        channel=Channel.IN_PERSON,
        profile=profile,
        purpose=IntakePurpose.DEMISSION_RECONVERSION,
        cep_requested_on=date(2026, 2, 16),
        reception_site_id="cep-r27-25-1",
    )


def _bobigny_minimal() -> IntakeRegistered:
    return IntakeRegistered(
        envelope=_envelope(
            IntakeRegistered,
            "0a3d7c51-8e2f-4b6a-a1d4-93c57e08b2f6",
            "2026-03-02T11:15:30.125Z",
            "cep-r11",
            person="p-0d5e8a1c3b7f9264",
        ),
        operator_id="cep-r11",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="11",
        departement_code="93",
        reception_site="Bobigny",
        channel=Channel.PHONE,
        profile=Profile(),
    )


def _besancon_decided(intake: IntakeRegistered) -> IntakeDecided:
    return IntakeDecided(
        envelope=_envelope(
            IntakeDecided,
            "c2e9a4f0-3b71-4d58-8f06-1a7b5d3e9c24",
            "2026-03-02T10:00:00.250Z",
            _ROUTER,
            cause=intake,
        ),
        intake_event_id=str(intake.event_id),
        operator_id="cep-r27",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="27",
        departement_code="25",
        status=DecisionStatus.DECIDED,
        competent_operator=OrganisationKind.REGIONAL_CEP,
        inform=[OrganisationKind.APEC],
        notice_due=True,
        rules=list(_BESANCON_RULES),
        reasons=[
            "R-APEC-CADRE: cadre : public de l'Apec [Code du travail L6111-6 (Apec : cadres)]",
            "R-REGIONAL-COMPETENT: salarié(e) du secteur privé : public de l'opérateur régional du CEP"
            " [Code du travail L6111-6 ; loi n° 2018-771 du 5 septembre 2018]",
            "R-NO-SELF-INFORM: la personne est déjà accueillie par l'opérateur régional du CEP : pas"
            " d'information sur ce même opérateur [choix éclairé : information sur les autres opérateurs"
            " (France compétences)]",
            "R-COMPETENT-CURRENT: l'opérateur régional du CEP accompagne ce public et reste compétent(e)"
            " [liberté de choix de l'accompagnateur]",
        ],
        missing_fields=[],
        ruleset_version=_RULESET,
        reference_version=_REFERENCE,
        notice_obligation=NoticeObligation.MANDATORY,
    )


def _besancon_notice_requested(intake: IntakeRegistered) -> NoticeRequested:
    return NoticeRequested(
        envelope=_envelope(
            NoticeRequested,
            "9d41b6e2-7c05-4f3a-b8e1-5a2c0d7f6b93",
            "2026-03-02T10:00:00.250Z",
            _ROUTER,
            cause=intake,
        ),
        intake_event_id=str(intake.event_id),
        operator_id="cep-r27",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="27",
        departement_code="25",
        channel=Channel.IN_PERSON,
        inform=[OrganisationKind.APEC],
        rules=list(_BESANCON_RULES),
        ruleset_version=_RULESET,
        reference_version=_REFERENCE,
        intake_occurred_at=intake.envelope.occurred_at,
        obligation=NoticeObligation.MANDATORY,
    )


def _besancon_notice_text() -> str:
    """As the notifier rendered the request; not kept in step with it, any realistic text does."""
    operator = "Opérateur régional CEP Bourgogne-Franche-Comté (à renseigner)"
    return (
        "Conseil en évolution professionnelle (CEP) : information pour un choix éclairé\n\n"
        f"Vous avez été accueilli(e) en présentiel par {operator}, région Bourgogne-Franche-Comté"
        " (département Doubs, 25).\n\n"
        "Le conseil en évolution professionnelle est gratuit. Plusieurs opérateurs le délivrent (Code du"
        " travail, article L6111-6). Selon votre situation, vous pouvez aussi vous adresser à :\n\n"
        "- Apec (Association pour l'emploi des cadres) — région Bourgogne-Franche-Comté : accompagne les"
        " cadres et les jeunes diplômés.\n"
        "  Téléphone : 0 809 361 212\n"
        "  Site : https://www.apec.fr\n\n"
        "Liberté de choix de l'accompagnateur : vous restez libre de choisir l'opérateur qui vous"
        " accompagne, et votre choix sera enregistré.\n"
        f"Vous pouvez poursuivre avec {operator} ou vous adresser à l'un des opérateurs ci-dessus.\n\n"
        "Référence : règles 2020-2023.1, données de référence 2020-2023.1.\n"
    )


def _besancon_notice_issued(intake: IntakeRegistered, requested: NoticeRequested) -> NoticeIssued:
    text = _besancon_notice_text()
    return NoticeIssued(
        envelope=_envelope(
            NoticeIssued,
            "4b7e2d9a-1f63-4c08-9a5e-e3d1b6c07f28",
            "2026-03-02T10:00:01.125Z",
            _NOTIFIER,
            cause=requested,
        ),
        notice_request_id=str(requested.event_id),
        intake_event_id=str(intake.event_id),
        operator_id="cep-r27",
        region_code="27",
        channel=Channel.IN_PERSON,
        inform=[OrganisationKind.APEC],
        language="fr",
        text=text,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        obligation=NoticeObligation.MANDATORY,
    )


def _besancon_choice(intake: IntakeRegistered, issued: NoticeIssued) -> ChoiceRecorded:
    return ChoiceRecorded(
        envelope=_envelope(
            ChoiceRecorded,
            "e5a0c3f7-2d94-4b1e-86c2-7f9d4a1b0e35",
            "2026-03-02T10:20:00Z",
            "cep-r27",
            cause=issued,
        ),
        intake_event_id=str(intake.event_id),
        operator_id="cep-r27",
        region_code="27",
        choice=Choice.SWITCH,
        chosen_operator_kind=OrganisationKind.APEC,
        consent_to_share=True,
    )


# -- Besançon: the referral to Apec --------------------------------------------------------------


def _besancon_referral(choice: ChoiceRecorded, profile: Profile) -> ReferralRequested:
    return ReferralRequested(
        envelope=_envelope(
            ReferralRequested,
            "7a2d5f8c-0b3e-4a61-9d7f-c4e8b1a6d053",
            "2026-03-02T10:20:00.500Z",
            _ROUTER,
            cause=choice,
        ),
        referral_id=_REFERRAL_ID,
        requester_org_id="cep-r27",
        recipient_org_id="apec-r27",
        recipient_kind=OrganisationKind.APEC,
        region_code="27",
        reason="choix éclairé : la personne choisit l'Apec",
        consent_to_share=True,
        shared_profile=profile,
        sealed_contact=example_sealed_contact(),  # schemas/vectors/sealed-contacts.json
    )


def _besancon_accepted(referral: ReferralRequested) -> ReferralStatusChanged:
    """Signed by its statement (the in-body `signer_org_id` and `signature` are superseded: null)."""
    return ReferralStatusChanged(
        envelope=_envelope(
            ReferralStatusChanged,
            "b1f4e7a2-6c38-4d95-8e0b-2a5c9f3d6e71",
            "2026-03-03T08:45:12.345Z",
            "apec-r27",
            cause=referral,
        ),
        referral_id=_REFERRAL_ID,
        status=ReferralStatus.ACCEPTED,
        actor_org_id="apec-r27",
    )


def _besancon_booked(referral: ReferralRequested) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        envelope=_envelope(
            ReferralStatusChanged,
            "d8c3b0f5-9a41-4e27-b6d8-5f1a0c7e3b92",
            "2026-03-04T14:30:00Z",
            "apec-r27",
            cause=referral,
        ),
        referral_id=_REFERRAL_ID,
        status=ReferralStatus.APPOINTMENT_BOOKED,
        actor_org_id="apec-r27",
        reason_code="in_person",
        note="Rendez-vous fixé à Besançon le 9 mars 2026 à 14 h, centre Apec Franche-Comté",
    )


def _besancon_verdict(accepted: ReferralStatusChanged) -> ReferralUpdateVerdict:
    """Names the update by its statement digest (`signed_update`, superseded, stays null) and the key
    the edge verified: apec-r27's statement test key."""
    return ReferralUpdateVerdict(
        envelope=_envelope(
            ReferralUpdateVerdict,
            "f2a6d9c1-4e83-4b07-9c5a-8d1e3f6b0a47",
            "2026-03-03T08:45:12.900Z",
            _ROUTER,
            cause=accepted,
        ),
        update_event_id=str(accepted.event_id),
        referral_id=_REFERRAL_ID,
        verdict=UpdateVerdict.APPLIED,
        status=ReferralStatus.ACCEPTED,
        signer_org_id="apec-r27",
        signer_key_id=statement_test_signer("apec-r27").key_id,
        state_before=ReferralStatus.RECEIVED,
        state_after=ReferralStatus.ACCEPTED,
        claimed_occurred_at=accepted.envelope.occurred_at,
        update_digest=statement_digest(codec.encode(accepted)),
    )


def _besancon_update_rejected(referral: ReferralRequested) -> ReferralUpdateRejected:
    return ReferralUpdateRejected(
        envelope=_envelope(
            ReferralUpdateRejected,
            "8e5b2c7f-3a16-4d49-b0e8-6c9f1d4a7b35",
            "2026-03-05T09:10:00.010Z",
            _ROUTER,
            cause=referral,
        ),
        referral_id=_REFERRAL_ID,
        rejected_event_id="a9d0e3b6-7f12-4c85-9b4a-1e6c8d2f5a70",
        sender_org_id="apec-r27",
        attempted_status=ReferralStatus.COMPLETED,
        current_status=ReferralStatus.APPOINTMENT_BOOKED,
        reason_code="not_allowed",
        detail="completed is not a step from appointment_booked",
    )


def _besancon_deadline_breached(referral: ReferralRequested) -> ReferralDeadlineBreached:
    return ReferralDeadlineBreached(
        envelope=_envelope(
            ReferralDeadlineBreached,
            "5d9a1e4c-8b27-4f63-a0c5-3e7b9d2f1c86",
            "2026-03-24T08:00:00Z",
            _ROUTER,
            cause=referral,
        ),
        referral_id=_REFERRAL_ID,
        requester_org_id="cep-r27",
        recipient_org_id="apec-r27",
        recipient_kind=OrganisationKind.APEC,
        region_code="27",
        deadline="first_appointment",
        business_days=15,
        due_at=_at("2026-03-23T23:00:00Z"),
        status_at_breach=ReferralStatus.APPOINTMENT_BOOKED,
        owner_org_id="apec-r27",
    )


def _besancon_reminder(referral: ReferralRequested) -> ReferralReminderDue:
    return ReferralReminderDue(
        envelope=_envelope(
            ReferralReminderDue,
            "8e3c5a71-2d94-4b06-9f1e-6a0b7c4d2e59",
            "2026-03-03T08:00:00Z",
            _ROUTER,
            cause=referral,
        ),
        referral_id=_REFERRAL_ID,
        requester_org_id="cep-r27",
        recipient_org_id="apec-r27",
        recipient_kind=OrganisationKind.APEC,
        region_code="27",
        reminder=ReminderKind.DEADLINE_TOMORROW,
        deadline="received",
        due_at=_at("2026-03-04T23:00:00Z"),
        days_waiting=0,
        status=ReferralStatus.REQUESTED,
    )


def _besancon_expired(referral: ReferralRequested) -> ReferralExpired:
    return ReferralExpired(
        envelope=_envelope(
            ReferralExpired,
            "1f6b9d3e-7c28-4a45-b0e1-9d2c8a5f3b74",
            "2026-04-01T08:00:00Z",
            _ROUTER,
            cause=referral,
        ),
        referral_id=_REFERRAL_ID,
        requester_org_id="cep-r27",
        recipient_org_id="apec-r27",
        recipient_kind=OrganisationKind.APEC,
        region_code="27",
        status_at_expiry=ReferralStatus.RECEIVED,
        expired_after_days=30,
        received_at=_at("2026-03-02T10:20:01Z"),
    )


def _besancon_ping_pong(referral: ReferralRequested) -> ReferralRegulationAlert:
    return ReferralRegulationAlert(
        envelope=_envelope(
            ReferralRegulationAlert,
            "1b6e9f3a-2c58-4d07-8a1e-f4b7c0d3e692",
            "2026-03-02T10:20:00.750Z",
            _ROUTER,
            cause=referral,
        ),
        alert="ping_pong",
        referral_id=_REFERRAL_ID,
        requester_org_id="cep-r27",
        recipient_org_id="apec-r27",
        region_code="27",
        related_referral_ids=["62d4a8f1-0e39-4b7c-95a2-d8f3e1b6c047"],
        referrals_in_window=2,
        window_days=90,
        detail="apec-r27 a orienté cette personne vers cep-r27 le 12 janvier 2026 ; elle y est réorientée",
    )


# -- Guadeloupe: a level-2 start without a recorded choice ---------------------------------------


def _guadeloupe_level_2() -> ServiceLevelStarted:
    return ServiceLevelStarted(
        envelope=_envelope(
            ServiceLevelStarted,
            "6a3f8d1b-5c74-4e29-9b0d-e2c6a4f7b158",
            "2026-03-09T13:00:00Z",
            "cep-r01",
            person=_GUADELOUPE_PERSON,
        ),
        intake_event_id=_GUADELOUPE_INTAKE_ID,
        operator_id="cep-r01",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="01",
        level=ServiceLevel.LEVEL_2,
        channel=Channel.VIDEO,
    )


def _guadeloupe_reminder() -> ChoiceReminderDue:
    return ChoiceReminderDue(
        envelope=_envelope(
            ChoiceReminderDue,
            "c7b2e5a9-0f46-4d13-8c7e-a3d9f1b4e260",
            "2026-03-09T12:30:00Z",
            _ROUTER,
            person=_GUADELOUPE_PERSON,
        ),
        intake_event_id=_GUADELOUPE_INTAKE_ID,
        operator_id="cep-r01",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="01",
        notice_issued_at=_at("2026-03-02T12:30:00.500Z"),
        delay_s=604800,
    )


def _guadeloupe_breach(start: ServiceLevelStarted) -> RegulationBreach:
    return RegulationBreach(
        envelope=_envelope(
            RegulationBreach,
            "e0d4a7c2-b39f-4e58-a6d1-7c2f5b8e0a93",
            "2026-03-09T13:00:00.200Z",
            _ROUTER,
            cause=start,
        ),
        service_level_event_id=str(start.event_id),
        intake_event_id=_GUADELOUPE_INTAKE_ID,
        operator_id="cep-r01",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="01",
        breach=BreachKind.NO_CHOICE_RECORDED,
        reason="accompagnement personnalisé commencé sans choix enregistré après la notice",
        ruleset_version=_RULESET,
    )


# -- events of no person -------------------------------------------------------------------------


def _ledger_checkpoint(key: Ed25519PrivateKey) -> CheckpointPublished:
    root = hashlib.sha256(b"cep-bus golden-vector checkpoint root").digest()
    return CheckpointPublished(
        envelope=_envelope(
            CheckpointPublished, "4e1a7d3b-6f92-4c05-b8a3-9d0e2c5f7b14", "2026-03-02T10:05:00Z", _LEDGER
        ),
        origin=_LEDGER_ORIGIN,
        tree_size=1024,
        root_hash_b64=base64.b64encode(root).decode(),
        signed_note=_checkpoint_note(_LEDGER_ORIGIN, 1024, root, key),
    )


def _router_dead_letter() -> DeadLetter:
    """A poison message, which its sender (cep-r11) signed all the same: the dead letter keeps its header."""
    poison = b"\xc3\x01" + bytes.fromhex("0123456789abcdef") + b"\x48not an event of the contract"
    [signature] = statement_test_signer("cep-r11").sign([poison])
    return DeadLetter(
        envelope=_envelope(
            DeadLetter, "93c6f0a2-d5e8-4b17-a94c-0e3b7d1f6a58", "2026-03-02T10:30:00.001Z", _ROUTER
        ),
        service="router",
        source_topic="cep.intake.registered",
        source_partition=3,
        source_offset=48213,
        reason="unknown_schema: no schema in schemas/avro has fingerprint 0123456789abcdef",
        error_class="DecodeError",
        original_key=b"p-2b9e6d0a4c8f1735",
        original_value=poison[:16],
        original_truncated=True,
        original_sha256=hashlib.sha256(poison).hexdigest(),
        original_size=len(poison),
        replay_of="0c5e8b3f-a7d2-4169-8e4b-f1d6a9c2b037",
        original_signature=signature.header(),
    )


def examples() -> list[Example]:
    """Every vector's event, in the order the vector files list them."""
    key = vector_test_key()
    profile = _cadre_profile()
    intake = _besancon_intake(profile)
    requested = _besancon_notice_requested(intake)
    issued = _besancon_notice_issued(intake, requested)
    choice = _besancon_choice(intake, issued)
    referral = _besancon_referral(choice, profile)
    accepted = _besancon_accepted(referral)
    minimal, late = _bobigny_minimal(), _besancon_deadline_breached(referral)
    gp_start = _guadeloupe_level_2()
    return [
        Example("besancon-cadre", "every optional payload field set; a date (cep_requested_on)", intake),
        Example("bobigny-minimal", "every optional payload field null, the profile all unknown", minimal),
        Example("besancon-decided", "decided, notice due; non-ASCII reasons", _besancon_decided(intake)),
        Example("besancon-notice-requested", "optional fields set; a timestamp in a union", requested),
        Example("besancon-notice-issued", "a multi-line French text and its SHA-256", issued),
        Example("besancon-switch-to-apec", "a switch naming the chosen operator", choice),
        Example("besancon-referral-to-apec", "a shared profile (a record in a union)", referral),
        Example("besancon-accepted", "a partner's update; reason_code and note null", accepted),
        Example(
            "besancon-appointment-booked", "a partner's update; a non-ASCII note", _besancon_booked(referral)
        ),
        Example(
            "besancon-verdict-applied",
            "names the accepted update by its statement digest",
            _besancon_verdict(accepted),
        ),
        Example("besancon-update-rejected", "a refused step", _besancon_update_rejected(referral)),
        Example("besancon-first-appointment-late", "a deadline missed", late),
        Example("besancon-ping-pong", "an array of strings", _besancon_ping_pong(referral)),
        Example(
            "besancon-reminder",
            "the day before a deadline; a timestamp in a union",
            _besancon_reminder(referral),
        ),
        Example("besancon-expired", "unanswered for 30 days: closed by the bus", _besancon_expired(referral)),
        Example("guadeloupe-level-2", "a level-2 start in region 01", gp_start),
        Example("guadeloupe-choice-reminder", "a timestamp outside the envelope", _guadeloupe_reminder()),
        Example("guadeloupe-breach", "no choice recorded before level 2", _guadeloupe_breach(gp_start)),
        Example("ledger-checkpoint", "no person; a signed note by the test key", _ledger_checkpoint(key)),
        Example(
            "router-dead-letter",
            "no person; bytes fields, every optional payload field set",
            _router_dead_letter(),
        ),
    ]
