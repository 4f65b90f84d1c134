"""The ledger's leaf: what one Merkle leaf holds and its byte encoding, as the ledger writes it and an
auditor reads it.

Leaf bytes are a `fr.cepbus.LedgerRecord` (schemas/avro) in Avro single-object encoding. The event itself
is sealed (`SealedPayload`: AES-256-GCM under a key per person, which the ledger service holds), so
destroying that key erases the person's data while every leaf, and so every proof, stays as it was. What
stays readable are the non-personal regulation facts (`facts`) the audit report needs; which event fields
those are is the ledger service's choice (`services/ledger/facts.py`).
"""

from __future__ import annotations

import base64
import functools
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fastavro
import fastavro.schema

from cepbus.contract.codec import MARKER
from cepbus.contract.schemas import record_schema as contract_record_schema
from cepbus.contract.schemas import schema_dir
from cepbus.contract.statements import StatementSignature

RECORD_SCHEMA_NAME = "fr.cepbus.LedgerRecord"
ERASURE_EVENT_TYPE = "fr.cepbus.LedgerErasure"
#: A leaf holding a version of the signed referral directory, in clear (`clear_payload`: the document).
DIRECTORY_EVENT_TYPE = "fr.cepbus.DirectoryVersion"


class LedgerRecordError(ValueError):
    """Leaf bytes that are not a ledger record."""


def record_schema() -> tuple[Any, bytes]:
    """(parsed schema, 8-byte CRC-64-AVRO fingerprint) of fr.cepbus.LedgerRecord."""
    schema = contract_record_schema(RECORD_SCHEMA_NAME)
    return schema.parsed, schema.fingerprint


@functools.cache
def leaf_versions() -> dict[bytes, tuple[Any, Any]]:
    """Fingerprint -> (writer schema, reader schema) of every leaf format a ledger may hold: the
    current one, and each released one (`schemas/avro/released/fr.cepbus.LedgerRecord/`), read into
    the current one by Avro resolution, so a ledger written before a format change still verifies."""
    current = contract_record_schema(RECORD_SCHEMA_NAME)
    versions: dict[bytes, tuple[Any, Any]] = {current.fingerprint: (current.parsed, None)}
    released = schema_dir() / "released" / RECORD_SCHEMA_NAME
    for path in sorted(released.glob("v*.avsc")):
        definition = json.loads(path.read_text(encoding="utf-8"))
        canonical = fastavro.schema.to_parsing_canonical_form(definition)
        fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
        versions.setdefault(fingerprint, (fastavro.parse_schema(definition), current.parsed))
    return versions


@dataclass(frozen=True)
class SealedPayload:
    key_id: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class StatementProof:
    """The author's statement signature of the event a leaf holds (`cepbus.contract.statements`)."""

    digest: bytes
    key_id: str
    signature: bytes
    batch_size: int
    batch_index: int
    path: bytes  # 32-byte hashes, concatenated

    def signature_of(self) -> StatementSignature:
        hashes = tuple(self.path[i : i + 32] for i in range(0, len(self.path), 32))
        return StatementSignature(self.key_id, self.signature, self.batch_size, self.batch_index, hashes)

    @classmethod
    def of(cls, digest: bytes, signature: StatementSignature) -> StatementProof:
        return cls(
            digest,
            signature.key_id,
            signature.signature,
            signature.size,
            signature.index,
            b"".join(signature.path),
        )

    def content(self) -> dict[str, Any]:
        return {
            "digest": self.digest.hex(),
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode(),
            "batch_size": self.batch_size,
            "batch_index": self.batch_index,
            "path": base64.b64encode(self.path).decode(),
        }


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
    statement: StatementProof | None = None

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
            "statement": None if self.statement is None else self.statement.__dict__,
        }

    @classmethod
    def decode(cls, leaf: bytes) -> LedgerRecord:
        """A leaf of the current format or of any released one (read into the current one)."""
        writers = leaf_versions()
        if leaf[:2] != MARKER or leaf[2:10] not in writers:
            raise LedgerRecordError("not a fr.cepbus.LedgerRecord single-object frame")
        writer, reader = writers[leaf[2:10]]
        body = io.BytesIO(leaf[10:])
        try:
            raw: Any = fastavro.schemaless_reader(body, writer, reader)
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
            statement=None if raw.get("statement") is None else StatementProof(**raw["statement"]),
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
            **({} if self.statement is None else {"statement": self.statement.content()}),
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


__all__ = [
    "DIRECTORY_EVENT_TYPE",
    "ERASURE_EVENT_TYPE",
    "RECORD_SCHEMA_NAME",
    "LedgerRecord",
    "LedgerRecordError",
    "SealedPayload",
    "StatementProof",
    "leaf_encoder",
    "record_schema",
]
