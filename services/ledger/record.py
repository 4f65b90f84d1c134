"""The ledger record: what one Merkle leaf holds, its byte encoding, and the sealing of personal data.

Leaf bytes are a `fr.cepbus.LedgerRecord` (schemas/avro) in Avro single-object encoding. The event itself
is sealed with AES-256-GCM under a key per person pseudonym, so destroying that key erases the person's
data while every leaf, and so every proof, stays as it was. What stays readable are pseudonyms and the
non-personal regulation facts (`NON_PERSONAL_FIELDS`) the audit report needs.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fastavro
import fastavro.schema
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cepbus.contract.codec import MARKER, DecodeError, decode_record
from cepbus.contract.schemas import record_schema as contract_record_schema

RECORD_SCHEMA_NAME = "fr.cepbus.LedgerRecord"
ERASURE_EVENT_TYPE = "fr.cepbus.LedgerErasure"

#: Event fields copied in clear into `facts`, whatever the event type: none of them says who the person
#: is, nor reveals health data. Everything else (profile, free text, notes, reasons, and the derived facts
#: that reveal a disability: the operators a person is told of, the rules that fired, the operator kind
#: chosen) stays sealed under the person's key, so erasure reaches it. To let the report see a new
#: fact, add its field name here, after asking whether it could reveal who the person is or their health.
NON_PERSONAL_FIELDS = frozenset(
    {
        # envelope
        "producer_org_id", "correlation_id", "causation_id",
        # where and who regulates
        "operator_id", "operator_kind", "region_code", "departement_code", "channel",
        # the reception site as an id of the public sites registry (not the free `reception_site` text,
        # which could name a place that reveals the person's situation: it stays sealed)
        "reception_site_id",
        # decisions and notices (not `inform`, `rules`, `competent_operator`: they can reveal a disability)
        "ruleset_version", "intake_event_id", "notice_request_id", "language", "text_sha256", "decision",
        "rule_id", "breach_kind", "breach", "deadline_at", "due_at", "obligation", "notice_obligation",
        "notice_due", "level",
        # choices and referrals (not `chosen_operator_kind`: a switch to Cap emploi reveals a disability)
        "choice", "consent_to_share", "referral_id", "requester_org_id", "recipient_org_id",
        "recipient_kind", "status", "actor_org_id", "reason_code", "deadline",
        # the router's verdicts on status updates
        "update_event_id", "verdict", "state_after", "claimed_occurred_at", "signer_org_id",
    }
)  # fmt: skip


class LedgerRecordError(ValueError):
    """Leaf bytes that are not a ledger record."""


def record_schema() -> tuple[Any, bytes]:
    """(parsed schema, 8-byte CRC-64-AVRO fingerprint) of fr.cepbus.LedgerRecord."""
    schema = contract_record_schema(RECORD_SCHEMA_NAME)
    return schema.parsed, schema.fingerprint


@dataclass(frozen=True)
class SealedPayload:
    key_id: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class LedgerRecord:
    index: int
    event_id: str
    event_type: str
    topic: str
    occurred_at_ms: int
    recorded_at_ms: int
    person_pseudonym: str | None
    facts: Mapping[str, str] = field(default_factory=dict)
    sealed: SealedPayload | None = None
    clear_payload: bytes | None = None

    def encode(self) -> bytes:
        """The leaf bytes (Avro single-object encoding; `leaf_encoder()` to encode many)."""
        return leaf_encoder()(self)

    def avro_body(self, facts: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The record as fastavro writes it (`facts`: already sorted, else sorted here)."""
        return {
            "index": self.index,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "topic": self.topic,
            "occurred_at_ms": self.occurred_at_ms,
            "recorded_at_ms": self.recorded_at_ms,
            "person_pseudonym": self.person_pseudonym,
            "facts": dict(sorted(self.facts.items())) if facts is None else dict(facts),
            "sealed": None if self.sealed is None else self.sealed.__dict__,
            "clear_payload": self.clear_payload,
        }

    @classmethod
    def decode(cls, leaf: bytes) -> LedgerRecord:
        parsed, fingerprint = record_schema()
        if leaf[:2] != MARKER or leaf[2:10] != fingerprint:
            raise LedgerRecordError("not a fr.cepbus.LedgerRecord single-object frame")
        body = io.BytesIO(leaf[10:])
        try:
            raw: Any = fastavro.schemaless_reader(body, parsed, None)
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError... on bad bodies
            raise LedgerRecordError(f"undecodable ledger record: {type(exc).__name__}: {exc}") from exc
        if body.tell() != len(leaf) - 10:
            raise LedgerRecordError("trailing bytes after the ledger record")
        sealed = raw["sealed"]
        return cls(
            index=raw["index"],
            event_id=raw["event_id"],
            event_type=raw["event_type"],
            topic=raw["topic"],
            occurred_at_ms=raw["occurred_at_ms"],
            recorded_at_ms=raw["recorded_at_ms"],
            person_pseudonym=raw["person_pseudonym"],
            facts=dict(raw["facts"]),
            sealed=None if sealed is None else SealedPayload(**sealed),
            clear_payload=raw["clear_payload"],
        )

    def content(self) -> dict[str, Any]:
        """The readable content, as a bundle carries it beside the leaf (JSON-friendly)."""
        return {
            "index": self.index,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "topic": self.topic,
            "occurred_at_ms": self.occurred_at_ms,
            "recorded_at_ms": self.recorded_at_ms,
            "person_pseudonym": self.person_pseudonym,
            "facts": dict(sorted(self.facts.items())),
            "sealed_key_id": None if self.sealed is None else self.sealed.key_id,
        }


# -- leaf encoding ---------------------------------------------------------------------------------

def leaf_encoder() -> Callable[[LedgerRecord], bytes]:
    """`LedgerRecord.encode` with the schema looked up once, for encoding many records (a batch)."""
    parsed, fingerprint = record_schema()
    header = MARKER + fingerprint

    def encode(record: LedgerRecord) -> bytes:
        facts = dict(sorted(record.facts.items()))  # sorted: one record, one byte string
        buffer = io.BytesIO()
        buffer.write(header)
        fastavro.schemaless_writer(buffer, parsed, record.avro_body(facts))
        return buffer.getvalue()

    return encode


def _fact_value(value: Any) -> str | None:
    if value is None or isinstance(value, bytes | dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def regulation_facts(payload: bytes) -> dict[str, str]:
    """The non-personal facts of an Avro-framed event; {} for bytes that are no known event (those are
    still recorded, sealed, since the ledger proves what it received)."""
    try:
        _, record = decode_record(payload)
    except DecodeError:
        return {}
    flat = {**record, **(record.get("envelope") or {})}
    facts = {}
    for name in NON_PERSONAL_FIELDS & flat.keys():
        value = flat[name]
        if type(value) is str:  # most facts: kept as they are (what _fact_value returns for a str)
            facts[name] = value
        elif (text := _fact_value(value)) is not None:
            facts[name] = text
    return facts


def new_person_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key_id: str, key: bytes, event_id: str, payload: bytes) -> SealedPayload:
    return sealer(key_id, key)(event_id, payload)


def sealer(key_id: str, key: bytes) -> Callable[[str, bytes], SealedPayload]:
    """`seal` under one key for many events (the cipher is set up once): (event_id, payload) -> sealed."""
    cipher = AESGCM(key)

    def seal_one(event_id: str, payload: bytes) -> SealedPayload:
        nonce = os.urandom(12)  # a fresh random nonce per event, as `seal` draws
        return SealedPayload(key_id, nonce, cipher.encrypt(nonce, payload, event_id.encode()))

    return seal_one


def unseal(key: bytes, event_id: str, sealed: SealedPayload) -> bytes:
    return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, event_id.encode())


@dataclass(frozen=True)
class NewRecord:
    """One event to append; `payload` is the event exactly as received, so the ledger proves the bytes."""

    event_id: str
    event_type: str
    topic: str
    occurred_at_ms: int
    person_pseudonym: str | None
    payload: bytes
    content_digest: str | None = None  # what tells a redelivery from a collision; default: the bytes'

    def digest(self) -> str:
        return self.content_digest or hashlib.sha256(self.payload).hexdigest()
