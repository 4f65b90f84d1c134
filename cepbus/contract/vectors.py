"""Golden vectors of the contract (`schemas/vectors/`): for each event type, fixed example events as
plain JSON beside their exact bytes in both framings, and for status updates the signed bytes, a test
key and the signature.

Why: another implementation (another language, another Avro library) proves it speaks the contract by
decoding these bytes to these values and encoding these values to these bytes, without a broker and
without running any Python. Everything here is deterministic (fixed ids, fixed times, Ed25519 is
deterministic), so `cep-bus vectors` rewrites the same files until the contract changes, and
`tests/unit/contract/test_golden_vectors.py` fails while the committed files are stale.

"Plain JSON" (`plain_json`, the reverse `from_plain_json`) is the value as the Avro body carries it,
written with JSON types only; `schemas/vectors/README.md` states the rules.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.contract import codec
from cepbus.contract.models import (
    EVENT_MODELS,
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
    ReferralRegulationAlert,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateRejected,
    ReferralUpdateVerdict,
    RegulationBreach,
    ServiceLevel,
    ServiceLevelStarted,
    UpdateVerdict,
    new_envelope,
)
from cepbus.contract.schemas import event_schema
from cepbus.contract.signatures import canonical_status_bytes, public_key_b64, sign_status
from cepbus.trust.keys import key_id

#: TEST KEY, PUBLIC ON PURPOSE: the seed is SHA-256 of this tag, so anyone can sign with it. It signs
#: the vectors' status updates (and checkpoint note) and nothing else; it is no development key
#: (`cepbus.trust.development`) and no directory lists it, so the bus refuses what it signs.
TEST_KEY_TAG = b"cep-bus golden-vector test key v1"
TEST_SEED = hashlib.sha256(TEST_KEY_TAG).digest()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)
_ROUTER, _NOTIFIER, _LEDGER = "cep-bus-router", "cep-bus-notifier", "cep-bus-ledger"
_RULESET, _REFERENCE = "2020-2023.1", "2020-2023.1"
_LEDGER_ORIGIN = "cep-bus.local/ledger"


def vector_test_key() -> Ed25519PrivateKey:
    """The vectors' Ed25519 key (see `TEST_KEY_TAG`)."""
    return Ed25519PrivateKey.from_private_bytes(TEST_SEED)


@dataclass(frozen=True)
class Example:
    """One vector's event, with a stable name and what it exercises."""

    name: str
    description: str
    event: Event


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


def examples() -> list[Example]:
    """Every vector's event, built here once. Three journeys: a cadre received by the regional operator
    of Bourgogne-Franche-Comté in Besançon who chooses Apec (the regulation loop and the referral),
    an intake in Seine-Saint-Denis that says nothing optional, and a level-2 start in Guadeloupe
    without a recorded choice (reminder, breach); then the ledger's checkpoint and a dead letter."""
    key = vector_test_key()
    person, guadeloupe = "p-7c1e4b9a2f3d5086", "p-51a8e03c9d2b7f64"
    profile = Profile(
        employment_status=EmploymentStatus.PRIVATE_EMPLOYEE,
        cadre=True,
        young_graduate=False,
        boeth=False,
        birth_year=1984,
        job_seeker=False,
    )
    intake = IntakeRegistered(
        envelope=_envelope(
            IntakeRegistered,
            "6f1c2b8e-4a7d-4e3b-9c15-2d8a0f6b7e41",
            "2026-03-02T10:00:00Z",
            "cep-r27",
            person=person,
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
    minimal = IntakeRegistered(
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
    rules = ["R-APEC-CADRE", "R-REGIONAL-COMPETENT", "R-NO-SELF-INFORM", "R-COMPETENT-CURRENT"]
    decided = IntakeDecided(
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
        rules=rules,
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
    requested = NoticeRequested(
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
        rules=rules,
        ruleset_version=_RULESET,
        reference_version=_REFERENCE,
        intake_occurred_at=intake.envelope.occurred_at,
        obligation=NoticeObligation.MANDATORY,
    )
    operator = "Opérateur régional CEP Bourgogne-Franche-Comté (à renseigner)"
    text = (  # as the notifier rendered this request; not kept in step with it, any realistic text does
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
    issued = NoticeIssued(
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
    choice = ChoiceRecorded(
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
    referral_id = "3c8f1a6d-5e27-4b90-a4d3-0b6e9c2f7a18"
    referral = ReferralRequested(
        envelope=_envelope(
            ReferralRequested,
            "7a2d5f8c-0b3e-4a61-9d7f-c4e8b1a6d053",
            "2026-03-02T10:20:00.500Z",
            _ROUTER,
            cause=choice,
        ),
        referral_id=referral_id,
        requester_org_id="cep-r27",
        recipient_org_id="apec-r27",
        recipient_kind=OrganisationKind.APEC,
        region_code="27",
        reason="choix éclairé : la personne choisit l'Apec",
        consent_to_share=True,
        shared_profile=profile,
    )
    accepted = sign_status(
        ReferralStatusChanged(
            envelope=_envelope(
                ReferralStatusChanged,
                "b1f4e7a2-6c38-4d95-8e0b-2a5c9f3d6e71",
                "2026-03-03T08:45:12.345Z",
                "apec-r27",
                cause=referral,
            ),
            referral_id=referral_id,
            status=ReferralStatus.ACCEPTED,
            actor_org_id="apec-r27",
        ),
        "apec-r27",
        key,
    )
    booked = sign_status(
        ReferralStatusChanged(
            envelope=_envelope(
                ReferralStatusChanged,
                "d8c3b0f5-9a41-4e27-b6d8-5f1a0c7e3b92",
                "2026-03-04T14:30:00Z",
                "apec-r27",
                cause=referral,
            ),
            referral_id=referral_id,
            status=ReferralStatus.APPOINTMENT_BOOKED,
            actor_org_id="apec-r27",
            reason_code="in_person",
            note="Rendez-vous fixé à Besançon le 9 mars 2026 à 14 h, centre Apec Franche-Comté",
        ),
        "apec-r27",
        key,
    )
    verdict = ReferralUpdateVerdict(
        envelope=_envelope(
            ReferralUpdateVerdict,
            "f2a6d9c1-4e83-4b07-9c5a-8d1e3f6b0a47",
            "2026-03-03T08:45:12.900Z",
            _ROUTER,
            cause=accepted,
        ),
        update_event_id=str(accepted.event_id),
        referral_id=referral_id,
        verdict=UpdateVerdict.APPLIED,
        status=ReferralStatus.ACCEPTED,
        signer_org_id="apec-r27",
        signer_key_id=key_id("apec-r27", base64.b64decode(public_key_b64(key))),
        state_before=ReferralStatus.RECEIVED,
        state_after=ReferralStatus.ACCEPTED,
        claimed_occurred_at=accepted.envelope.occurred_at,
        signed_update=codec.encode(accepted),
    )
    rejected = ReferralUpdateRejected(
        envelope=_envelope(
            ReferralUpdateRejected,
            "8e5b2c7f-3a16-4d49-b0e8-6c9f1d4a7b35",
            "2026-03-05T09:10:00.010Z",
            _ROUTER,
            cause=referral,
        ),
        referral_id=referral_id,
        rejected_event_id="a9d0e3b6-7f12-4c85-9b4a-1e6c8d2f5a70",
        sender_org_id="apec-r27",
        attempted_status=ReferralStatus.COMPLETED,
        current_status=ReferralStatus.APPOINTMENT_BOOKED,
        reason_code="not_allowed",
        detail="completed is not a step from appointment_booked",
    )
    breached = ReferralDeadlineBreached(
        envelope=_envelope(
            ReferralDeadlineBreached,
            "5d9a1e4c-8b27-4f63-a0c5-3e7b9d2f1c86",
            "2026-03-24T08:00:00Z",
            _ROUTER,
            cause=referral,
        ),
        referral_id=referral_id,
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
    alert = ReferralRegulationAlert(
        envelope=_envelope(
            ReferralRegulationAlert,
            "1b6e9f3a-2c58-4d07-8a1e-f4b7c0d3e692",
            "2026-03-02T10:20:00.750Z",
            _ROUTER,
            cause=referral,
        ),
        alert="ping_pong",
        referral_id=referral_id,
        requester_org_id="cep-r27",
        recipient_org_id="apec-r27",
        region_code="27",
        related_referral_ids=["62d4a8f1-0e39-4b7c-95a2-d8f3e1b6c047"],
        referrals_in_window=2,
        window_days=90,
        detail="apec-r27 a orienté cette personne vers cep-r27 le 12 janvier 2026 ; elle y est réorientée",
    )
    gp_intake = "2f7c0b4e-9d31-4a86-b5e2-c1a7f8d3e069"
    gp_start = ServiceLevelStarted(
        envelope=_envelope(
            ServiceLevelStarted,
            "6a3f8d1b-5c74-4e29-9b0d-e2c6a4f7b158",
            "2026-03-09T13:00:00Z",
            "cep-r01",
            person=guadeloupe,
        ),
        intake_event_id=gp_intake,
        operator_id="cep-r01",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="01",
        level=ServiceLevel.LEVEL_2,
        channel=Channel.VIDEO,
    )
    reminder = ChoiceReminderDue(
        envelope=_envelope(
            ChoiceReminderDue,
            "c7b2e5a9-0f46-4d13-8c7e-a3d9f1b4e260",
            "2026-03-09T12:30:00Z",
            _ROUTER,
            person=guadeloupe,
        ),
        intake_event_id=gp_intake,
        operator_id="cep-r01",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="01",
        notice_issued_at=_at("2026-03-02T12:30:00.500Z"),
        delay_s=604800,
    )
    breach = RegulationBreach(
        envelope=_envelope(
            RegulationBreach,
            "e0d4a7c2-b39f-4e58-a6d1-7c2f5b8e0a93",
            "2026-03-09T13:00:00.200Z",
            _ROUTER,
            cause=gp_start,
        ),
        service_level_event_id=str(gp_start.event_id),
        intake_event_id=gp_intake,
        operator_id="cep-r01",
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="01",
        breach=BreachKind.NO_CHOICE_RECORDED,
        reason="accompagnement personnalisé commencé sans choix enregistré après la notice",
        ruleset_version=_RULESET,
    )
    root = hashlib.sha256(b"cep-bus golden-vector checkpoint root").digest()
    checkpoint = CheckpointPublished(
        envelope=_envelope(
            CheckpointPublished, "4e1a7d3b-6f92-4c05-b8a3-9d0e2c5f7b14", "2026-03-02T10:05:00Z", _LEDGER
        ),
        origin=_LEDGER_ORIGIN,
        tree_size=1024,
        root_hash_b64=base64.b64encode(root).decode(),
        signed_note=_checkpoint_note(_LEDGER_ORIGIN, 1024, root, key),
    )
    poison = b"\xc3\x01" + bytes.fromhex("0123456789abcdef") + b"\x48not an event of the contract"
    letter = DeadLetter(
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
    )
    return [
        Example("besancon-cadre", "every optional payload field set; a date (cep_requested_on)", intake),
        Example("bobigny-minimal", "every optional payload field null, the profile all unknown", minimal),
        Example("besancon-decided", "decided, notice due; non-ASCII reasons", decided),
        Example("besancon-notice-requested", "optional fields set; a timestamp in a union", requested),
        Example("besancon-notice-issued", "a multi-line French text and its SHA-256", issued),
        Example("besancon-switch-to-apec", "a switch naming the chosen operator", choice),
        Example("besancon-referral-to-apec", "a shared profile (a record in a union)", referral),
        Example("besancon-accepted", "signed; reason_code and note null", accepted),
        Example("besancon-appointment-booked", "signed; a non-ASCII note", booked),
        Example("besancon-verdict-applied", "carries the accepted update's single-object bytes", verdict),
        Example("besancon-update-rejected", "a refused step", rejected),
        Example("besancon-first-appointment-late", "a deadline missed", breached),
        Example("besancon-ping-pong", "an array of strings", alert),
        Example("guadeloupe-level-2", "a level-2 start in region 01", gp_start),
        Example("guadeloupe-choice-reminder", "a timestamp outside the envelope", reminder),
        Example("guadeloupe-breach", "no choice recorded before level 2", breach),
        Example("ledger-checkpoint", "no person; a signed note by the test key", checkpoint),
        Example("router-dead-letter", "no person; bytes fields, every optional payload field set", letter),
    ]


# -- plain JSON ---------------------------------------------------------------------------------


def plain_json(schema: Any, datum: Any) -> Any:
    """`datum` (a model dump or a decoded record) as plain JSON, walking the Avro `schema` (named
    types inlined at first use, as `EventSchema.definition` holds them)."""
    return _walk(schema, datum, {}, None, to_plain=True)


def from_plain_json(schema: Any, value: Any) -> Any:
    """The reverse of `plain_json`: the Python record fastavro, Apache avro and the models take
    (aware UTC datetimes, dates, bytes)."""
    return _walk(schema, value, {}, None, to_plain=False)


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _walk(schema: Any, datum: Any, names: dict[str, Any], namespace: str | None, *, to_plain: bool) -> Any:
    if isinstance(schema, list):
        if datum is None:
            if "null" not in schema:
                raise ValueError(f"null for a union without null: {schema}")
            return None
        branches = [branch for branch in schema if branch != "null"]
        if len(branches) != 1:  # unwrapping is unambiguous only for ["null", X]
            raise ValueError(f"plain JSON supports only ['null', X] unions, not {schema}")
        return _walk(branches[0], datum, names, namespace, to_plain=to_plain)
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _primitive(schema, None, datum, to_plain)
        named = names[_full_name(schema, namespace)]
        return _walk(named, datum, names, namespace, to_plain=to_plain)
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return _walk(kind, datum, names, namespace, to_plain=to_plain)
    if kind in ("record", "error", "enum", "fixed"):
        full = _full_name(schema["name"], schema.get("namespace", namespace))
        names[full] = schema
        namespace = full.rsplit(".", 1)[0] if "." in full else namespace
    if kind in ("record", "error"):
        return {
            field["name"]: _walk(field["type"], datum[field["name"]], names, namespace, to_plain=to_plain)
            for field in schema["fields"]
        }
    if kind == "enum":
        return datum.value if isinstance(datum, Enum) else str(datum)
    if kind == "array":
        return [_walk(schema["items"], item, names, namespace, to_plain=to_plain) for item in datum]
    if kind == "map":
        return {k: _walk(schema["values"], v, names, namespace, to_plain=to_plain) for k, v in datum.items()}
    if kind == "fixed":
        return datum.hex() if to_plain else bytes.fromhex(datum)
    return _primitive(kind, schema.get("logicalType"), datum, to_plain)


def _primitive(kind: str, logical: str | None, datum: Any, to_plain: bool) -> Any:
    if kind == "bytes":
        return bytes(datum).hex() if to_plain else bytes.fromhex(datum)
    if kind == "long" and logical == "timestamp-millis":
        if to_plain:
            return (datum - _EPOCH) // _MILLISECOND if isinstance(datum, datetime) else int(datum)
        return _EPOCH + int(datum) * _MILLISECOND
    if kind == "int" and logical == "date":
        if to_plain:
            return (datum - _EPOCH_DAY).days if isinstance(datum, date) else int(datum)
        return _EPOCH_DAY + timedelta(days=int(datum))
    if kind == "string":
        return str(datum.value if isinstance(datum, Enum) else datum)  # uuid.UUID, a StrEnum, a str
    return datum


# -- vectors and files --------------------------------------------------------------------------


def build_vector(example: Example) -> dict[str, Any]:
    """One vector (keys sorted; `value` in schema field order). The value is written from the model,
    not from the bytes, so decoding the bytes back to it is a check, not a tautology."""
    event = example.event
    schema = event_schema(event.avro_name)
    single = codec.encode(event)
    schema_id = codec.contract_schema_id(schema)
    vector: dict[str, Any] = {
        "confluent_hex": codec.confluent_frame(single, schema_id).hex(),
        "confluent_schema_id": schema_id,
        "description": example.description,
        "fingerprint_hex": schema.fingerprint.hex(),
        "name": example.name,
        "schema_file": f"{schema.name}.avsc",
        "single_object_hex": single.hex(),
        "type": schema.name,
        "value": plain_json(schema.definition, event.model_dump(mode="python")),
    }
    if isinstance(event, ReferralStatusChanged):
        if event.signer_org_id is None or event.signature is None:
            raise ValueError(f"{example.name}: a status update vector must be signed")
        vector["signature"] = {
            "canonical_bytes_hex": canonical_status_bytes(event).hex(),
            "public_key_b64": public_key_b64(vector_test_key()),
            "signature_hex": event.signature.hex(),
            "signer_org_id": event.signer_org_id,
            "test_seed_hex": TEST_SEED.hex(),
        }
    return dict(sorted(vector.items()))


def vectors() -> dict[str, list[dict[str, Any]]]:
    """Every vector, by event type (full name), in the order of `EVENT_MODELS`; a type without an
    example is an error, so a new event type cannot ship without its vectors."""
    by_type: dict[str, list[dict[str, Any]]] = {name: [] for name in EVENT_MODELS}
    for example in examples():
        by_type[example.event.avro_name].append(build_vector(example))
    missing = sorted(name for name, found in by_type.items() if not found)
    if missing:
        raise ValueError(f"no golden vector for {missing}: add an example to cepbus/contract/vectors.py")
    return by_type


def rendered_files() -> dict[str, str]:
    """File name -> text: `fr.cepbus.X.json`, a JSON list of that type's vectors, UTF-8, indented,
    with a trailing newline. (README.md beside them is written by hand.)"""
    return {
        f"{name}.json": json.dumps(found, indent=2, ensure_ascii=False) + "\n"
        for name, found in vectors().items()
    }


def write_vectors(out: Path) -> list[Path]:
    """Write every vector file under `out`; drop stale `fr.cepbus.*.json` (a type removed from the
    contract must not keep vectors beside the others)."""
    files = rendered_files()
    out.mkdir(parents=True, exist_ok=True)
    for stale in sorted(out.glob("fr.cepbus.*.json")):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
