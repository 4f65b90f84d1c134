"""Avro single-object encoding (Avro specification, "Single object encoding").

Frame: marker 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
Parsing Canonical Form, then the Avro binary body. Any Avro implementation finds the writer schema
from `schemas/avro` alone.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pydantic

from cepbus.contract.models import EVENT_MODELS, Event
from cepbus.contract.schemas import EventSchema, by_fingerprint, event_schema

MARKER = b"\xc3\x01"
HEADER_LEN = len(MARKER) + 8


class DecodeError(ValueError):
    """Bytes that are not a valid cep-bus event; `reason` is short and stable, for metrics labels."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(event: Event) -> bytes:
    schema = event_schema(event.avro_name)
    return encode_record(schema, event.model_dump(mode="python"))


def encode_record(schema: EventSchema, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(MARKER)
    buffer.write(schema.fingerprint)
    fastavro.schemaless_writer(buffer, schema.parsed, record)
    return buffer.getvalue()


def decode_record(data: bytes) -> tuple[EventSchema, dict[str, Any]]:
    """Frame and body only: the writer schema and the raw Avro record."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("not_bytes", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_LEN:
        raise DecodeError("truncated_header", f"{len(data)} bytes, a frame needs at least {HEADER_LEN}")
    if data[:2] != MARKER:
        raise DecodeError("bad_marker", f"starts with {data[:2].hex()}, expected c301 (Avro single-object)")
    fingerprint = data[2:HEADER_LEN]
    schema = by_fingerprint().get(fingerprint)
    if schema is None:
        raise DecodeError("unknown_schema", f"no schema in schemas/avro has fingerprint {fingerprint.hex()}")
    body = io.BytesIO(data[HEADER_LEN:])
    try:
        record = fastavro.schemaless_reader(body, schema.parsed, schema.reader)
        if not isinstance(record, dict):
            raise ValueError(f"the body decoded to {type(record).__name__}, not a record")
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError... on bad bodies
        raise DecodeError("bad_body", f"{schema.short_name}: {type(exc).__name__}: {exc}") from exc
    if body.tell() != len(data) - HEADER_LEN:
        raise DecodeError(
            "trailing_bytes",
            f"{schema.short_name}: {len(data) - HEADER_LEN - body.tell()} bytes after the body",
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
