"""Avro single-object encoding: round trip, fingerprint lookup, and bytes that are not an event."""

from __future__ import annotations

import io
import struct

import fastavro
import pytest

from cepbus.contract import codec
from cepbus.contract.models import EVENT_MODELS
from cepbus.contract.schemas import by_fingerprint, event_schema, event_schemas
from tests.support.factories import intake


def test_round_trip_keeps_every_field() -> None:
    event = intake(cadre=True, boeth=True)
    assert codec.decode(codec.encode(event)) == event


def test_frame_is_marker_fingerprint_body() -> None:
    event = intake()
    data = codec.encode(event)
    schema = event_schema("IntakeRegistered")
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == schema.fingerprint
    # any Avro implementation can read the body with the schema found by fingerprint alone
    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), by_fingerprint()[data[2:10]].parsed, None)
    assert record["region_code"] == event.region_code


def test_fingerprint_is_crc64_avro_little_endian_of_canonical_form() -> None:
    # Avro spec test vector: the schema "null" has CRC-64-AVRO fingerprint 7195948357588979594
    assert (
        fastavro.schema.fingerprint('"null"', "CRC-64-AVRO") == struct.pack("<q", 7195948357588979594).hex()
    )
    for schema in event_schemas().values():
        expected = bytes.fromhex(fastavro.schema.fingerprint(schema.canonical_form, "CRC-64-AVRO"))
        assert schema.fingerprint == expected


def test_every_event_schema_has_a_model_and_distinct_fingerprint() -> None:
    assert set(event_schemas()) == set(EVENT_MODELS)
    current = {schema.fingerprint for schema in event_schemas().values()}
    assert len(current) == len(event_schemas())
    # the decoder also knows released older versions, each resolved into a current schema
    for fingerprint, schema in by_fingerprint().items():
        assert (fingerprint in current) == (schema.reader is None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated_header"),
        (b"\xc3\x01\x00", "truncated_header"),
        (b'{"json": true, "not": "avro"}', "bad_marker"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", "unknown_schema"),
    ],
)
def test_garbage_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(codec.DecodeError) as caught:
        codec.decode(data)
    assert caught.value.reason == reason


def test_truncated_body_and_trailing_bytes_are_refused() -> None:
    data = codec.encode(intake())
    with pytest.raises(codec.DecodeError) as truncated:
        codec.decode(data[:-4])
    assert truncated.value.reason == "bad_body"
    with pytest.raises(codec.DecodeError) as trailing:
        codec.decode(data + b"\x00")
    assert trailing.value.reason == "trailing_bytes"


def test_valid_avro_with_invalid_content_is_refused() -> None:
    event = intake()
    record = event.model_dump(mode="python")
    record["departement_code"] = "999"  # Avro string, but not a département code
    data = codec.encode_record(event_schema("IntakeRegistered"), record)
    with pytest.raises(codec.DecodeError) as caught:
        codec.decode(data)
    assert caught.value.reason == "invalid_content"
    assert "departement_code" in caught.value.detail


def test_an_event_written_with_a_released_older_schema_is_read_by_resolution() -> None:
    """A producer not yet upgraded writes with v1 (no `purpose`, no `cep_requested_on`): the
    decoder finds v1 by its fingerprint and resolves it into the current schema's defaults."""
    import fastavro.schema

    from cepbus.contract.schemas import schema_dir

    v1_path = schema_dir() / "released" / "fr.cepbus.IntakeRegistered" / "v1.avsc"
    v1 = fastavro.schema.load_schema(str(v1_path), _write_hint=False)
    v1_fingerprint = bytes.fromhex(
        fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(v1), "CRC-64-AVRO")
    )
    current = event_schema("IntakeRegistered")
    assert v1_fingerprint != current.fingerprint  # the contract has grown since v1
    event = intake(cadre=True)
    record = event.model_dump(mode="python")
    v1_fields = {field["name"] for field in v1["fields"]}
    old_record = {name: value for name, value in record.items() if name in v1_fields}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(v1), old_record)
    decoded = codec.decode(codec.MARKER + v1_fingerprint + body.getvalue())
    assert decoded == event.model_copy(update={name: None for name in set(record) - v1_fields})
