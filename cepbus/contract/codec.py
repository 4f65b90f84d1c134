"""The two framings of an event on the wire; the first byte tells them apart.

- Avro single-object encoding (Avro specification, "Single object encoding"), the default: marker
  0xC3 0x01, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing
  Canonical Form, then the Avro binary body. Any Avro implementation finds the writer schema from
  `schemas/avro` alone.
- Confluent Schema Registry framing, for the tools that expect it (Kafka UI, Connect, ksqlDB,
  Confluent clients): magic byte 0x00, the 4-byte big-endian schema id, then the same Avro body.
  The id means something only to a registry: `SchemaIds` turns it into a writer schema. Without a
  registry configured the contract's own ids are used (`contract_schema_id`), the ids that
  `cep-bus schema-registry` serves.

Both carry the same body, so reframing never re-encodes (`single_object`, `confluent_frame`).
"""

from __future__ import annotations

import functools
import io
from typing import Any, Protocol

import fastavro
import pydantic

from cepbus.contract.models import EVENT_MODELS, Event
from cepbus.contract.schemas import EventSchema, by_fingerprint, event_schema, schema_dir

MARKER = b"\xc3\x01"
HEADER_LEN = len(MARKER) + 8
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_LEN = 5


class DecodeError(ValueError):
    """Bytes that are not a valid cep-bus event; `reason` is short and stable, for metrics labels."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SchemaLookupUnavailable(RuntimeError):
    """The schema registry could not be asked: an infrastructure failure, retried, never a verdict on
    the event (`cepbus.runtime.sqldb.is_unavailable` says so)."""


class SchemaIds(Protocol):
    """Confluent schema id -> writer schema; None when the id names no schema of the contract. May
    raise `SchemaLookupUnavailable`."""

    def schema_for_id(self, schema_id: int) -> EventSchema | None: ...


def contract_schema_id(schema: EventSchema) -> int:
    """The contract's own Confluent id of a schema: the first 4 bytes of its fingerprint, as they
    appear in a single-object frame, read big-endian, as a positive 31-bit integer. Derived, so it is
    the same in every process and registry run, and independent of the order schemas were added."""
    return int.from_bytes(schema.fingerprint[:4], "big") & 0x7FFFFFFF


class ContractSchemaIds:
    """The contract's ids (`contract_schema_id`) of every current and released schema."""

    def schema_for_id(self, schema_id: int) -> EventSchema | None:
        return _by_contract_id(str(schema_dir())).get(schema_id)


@functools.lru_cache(maxsize=4)
def _by_contract_id(directory: str) -> dict[int, EventSchema]:
    """Built once per schema directory (`by_fingerprint` is, too)."""
    index: dict[int, EventSchema] = {}
    for schema in by_fingerprint().values():
        schema_id = contract_schema_id(schema)
        other = index.setdefault(schema_id, schema)
        if other is not schema:  # 31 bits of a 64-bit fingerprint: a clash is unlikely, but refused
            raise ValueError(f"{schema.name} and {other.name} share the contract schema id {schema_id}")
    return index


_schema_ids: SchemaIds = ContractSchemaIds()


def use_schema_ids(ids: SchemaIds | None) -> None:
    """Where Confluent ids are looked up in this process (a registry); None: the contract's ids."""
    global _schema_ids
    _schema_ids = ids or ContractSchemaIds()


def encode(event: Event) -> bytes:
    schema = event_schema(event.avro_name)
    return encode_record(schema, event.model_dump(mode="python"))


def encode_record(schema: EventSchema, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(MARKER)
    buffer.write(schema.fingerprint)
    fastavro.schemaless_writer(buffer, schema.parsed, record)
    return buffer.getvalue()


def confluent_frame(single_object: bytes, schema_id: int) -> bytes:
    """A single-object frame's body under a Confluent header (magic 0, `schema_id` big-endian)."""
    return bytes([CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big") + single_object[HEADER_LEN:]


def writer_schema(data: bytes) -> tuple[EventSchema, int]:
    """The writer schema of a frame of either kind, and where its body starts. Raises DecodeError,
    or SchemaLookupUnavailable when the registry that knows a Confluent id cannot be asked."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("not_bytes", f"expected bytes, got {type(data).__name__}")
    if data[:1] == bytes([CONFLUENT_MAGIC]):
        if len(data) < CONFLUENT_HEADER_LEN:
            raise DecodeError("truncated_header", f"{len(data)} bytes, a Confluent frame needs 5")
        schema_id = int.from_bytes(data[1:CONFLUENT_HEADER_LEN], "big")
        found = _schema_ids.schema_for_id(schema_id)
        if found is None:
            raise DecodeError("unknown_schema", f"schema id {schema_id} names no schema of schemas/avro")
        return found, CONFLUENT_HEADER_LEN
    if len(data) < HEADER_LEN:
        raise DecodeError("truncated_header", f"{len(data)} bytes, a frame needs at least {HEADER_LEN}")
    if data[:2] != MARKER:
        raise DecodeError(
            "bad_marker",
            f"starts with {bytes(data[:2]).hex()}, expected c301 (Avro single-object) or 00 (Confluent)",
        )
    fingerprint = bytes(data[2:HEADER_LEN])
    schema = by_fingerprint().get(fingerprint)
    if schema is None:
        raise DecodeError("unknown_schema", f"no schema in schemas/avro has fingerprint {fingerprint.hex()}")
    return schema, HEADER_LEN


def single_object(data: bytes) -> bytes:
    """The same event as an Avro single-object frame (unchanged if it is one): what the ledger keeps,
    so that its leaves name their writer schema without any registry."""
    if data[:2] == MARKER:  # already one (the decoder checks its fingerprint)
        return bytes(data)
    schema, start = writer_schema(data)
    if start == HEADER_LEN:
        return bytes(data)
    return MARKER + schema.fingerprint + bytes(data[start:])


def decode_record(data: bytes) -> tuple[EventSchema, dict[str, Any]]:
    """Frame and body only: the writer schema and the raw Avro record."""
    schema, start = writer_schema(data)
    data = bytes(data)
    body = io.BytesIO(data[start:])
    try:
        record = fastavro.schemaless_reader(body, schema.parsed, schema.reader)
        if not isinstance(record, dict):
            raise ValueError(f"the body decoded to {type(record).__name__}, not a record")
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError... on bad bodies
        raise DecodeError("bad_body", f"{schema.short_name}: {type(exc).__name__}: {exc}") from exc
    if body.tell() != len(data) - start:
        raise DecodeError(
            "trailing_bytes",
            f"{schema.short_name}: {len(data) - start - body.tell()} bytes after the body",
        )
    return schema, record


def decode(data: bytes) -> Event:
    """Bytes -> validated event model, or DecodeError saying why not."""
    schema, record = decode_record(data)
    model = EVENT_MODELS.get(schema.name)
    if model is None:
        raise DecodeError("no_model", f"{schema.name} has a schema but no model")
    try:
        return model.model_validate(record)
    except pydantic.ValidationError as exc:
        raise DecodeError("invalid_content", f"{schema.short_name}: {_summarise(exc)}") from exc


def _summarise(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors()[:5])
