"""The golden vectors (schemas/vectors) are what `cep-bus vectors` generates now, and say the truth about
the contract: their bytes decode to their values and their values encode to their bytes, in fastavro (the
codec) and in Apache `avro` (a second implementation, reading the folder itself); their fingerprints and
Confluent ids are the contract's, recomputed here from the canonical form; the status updates' canonical
bytes, rebuilt from the value as the README says, are signed by the test key, and a flipped bit fails."""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import io
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cepbus.auditlog.note import Verifier, key_id, open_checkpoint
from cepbus.contract import codec
from cepbus.contract.models import EVENT_MODELS, ReferralStatusChanged
from cepbus.contract.plain_json import from_plain_json, plain_json
from cepbus.contract.schemas import event_schema, event_schemas, schema_dir
from cepbus.contract.signatures import canonical_status_bytes, public_key_b64, signature_valid
from cepbus.trust.development import is_development_authority_key, is_development_key
from cepbus_app.vectors.examples import TEST_KEY_TAG
from cepbus_app.vectors.writer import rendered_files, write_vectors
from tests.support import ROOT
from tests.support.node import NODE_DIR, require_node

VECTORS = ROOT / "schemas" / "vectors"
REGENERATE = "schemas/vectors is stale: run `cep-bus vectors`"


def _committed() -> dict[str, list[dict[str, Any]]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(VECTORS.glob("fr.cepbus.*.json"))
    }


ALL = [vector for found in _committed().values() for vector in found]
SIGNED = [vector for vector in ALL if vector["type"] == ReferralStatusChanged.avro_name]


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [vector["name"] for vector in vectors]


# -- the files ----------------------------------------------------------------------------------


def test_the_committed_files_are_what_the_generator_makes_now() -> None:
    expected = rendered_files()
    for name, text in expected.items():
        path = VECTORS / name
        assert path.is_file(), f"{name} missing; {REGENERATE}"
        assert path.read_text(encoding="utf-8") == text, f"{name} differs; {REGENERATE}"
    stale = sorted({path.name for path in VECTORS.glob("fr.cepbus.*.json")} - set(expected))
    assert not stale, f"stale vector files {stale}; {REGENERATE}"
    assert (VECTORS / "README.md").is_file()


def test_the_generation_is_deterministic_and_the_writer_drops_stale_files(tmp_path: Path) -> None:
    (tmp_path / "fr.cepbus.Gone.json").write_text("[]")
    write_vectors(tmp_path)
    first = {path.name: path.read_bytes() for path in sorted(tmp_path.iterdir())}
    write_vectors(tmp_path)
    second = {path.name: path.read_bytes() for path in sorted(tmp_path.iterdir())}
    assert first == second
    assert set(first) == set(rendered_files())  # the stale file is gone


def test_every_event_type_has_a_vector_in_its_own_file() -> None:
    committed = _committed()
    assert set(committed) == set(EVENT_MODELS) == set(event_schemas())
    for name, found in committed.items():
        assert found, f"{name}.json holds no vector"
        for vector in found:
            assert vector["type"] == name
            assert vector["schema_file"] == f"{name}.avsc"
            assert (schema_dir() / vector["schema_file"]).is_file()
    names = _ids(ALL)
    assert len(names) == len(set(names)), "vector names must be unique"


def _optional_values(schema: Any, value: Any, names: dict[str, Any]) -> list[Any]:
    """The value at every ["null", X] position of a record's payload, nested records included; the
    envelope is left out (a person event must name its person, a first event has no cause)."""
    if isinstance(schema, str) and schema in names:
        return _optional_values(names[schema], value, names)
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return []
    names[schema["name"]] = schema
    found: list[Any] = []
    for field in schema["fields"]:
        kind, inner = field["type"], value[field["name"]]
        if isinstance(kind, dict) and kind.get("type") in ("record", "enum"):
            names[kind["name"]] = kind
        if field["name"] == "envelope":
            continue
        if isinstance(kind, list):
            found.append(inner)
            kind = next(branch for branch in kind if branch != "null")
            if inner is None:
                continue
        found.extend(_optional_values(kind, inner, names))
    return found


def test_some_type_has_a_vector_with_every_optional_field_null_and_one_with_every_one_set() -> None:
    both = []
    for name, found in _committed().items():
        optional = [_optional_values(event_schema(name).definition, v["value"], {}) for v in found]
        if any(all(x is None for x in o) for o in optional) and any(o and None not in o for o in optional):
            both.append(name)
    assert both


def test_each_optional_field_of_the_envelope_is_null_somewhere_and_set_elsewhere() -> None:
    envelopes = [vector["value"]["envelope"] for vector in ALL]
    for field in ("person_pseudonym", "causation_id"):
        assert {envelope[field] is None for envelope in envelopes} == {True, False}, field


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _avro_long(n: int) -> bytes:
    """Avro's zig-zag varint of a long (here a length, so n >= 0)."""
    zigzag, out = (n << 1) ^ (n >> 63), bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def test_non_ascii_strings_are_prefixed_with_their_utf8_length() -> None:
    checked = 0
    for vector in ALL:
        for text in _strings(vector["value"]):
            if not text.isascii():
                raw = text.encode("utf-8")
                assert len(raw) > len(text)
                assert (_avro_long(len(raw)) + raw).hex() in vector["single_object_hex"], vector["name"]
                checked += 1
    assert checked


# -- framing, fingerprints, ids -----------------------------------------------------------------


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO (Avro specification, "Schema Fingerprints"), written from the specification."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize("vector", ALL, ids=_ids(ALL))
def test_the_fingerprint_and_the_confluent_id_are_the_contracts(vector: dict[str, Any]) -> None:
    schema = event_schema(vector["type"])
    fingerprint = _crc64_avro(schema.canonical_form.encode()).to_bytes(8, "little")
    assert vector["fingerprint_hex"] == fingerprint.hex() == schema.fingerprint.hex()
    schema_id = int.from_bytes(fingerprint[:4], "big") & 0x7FFFFFFF
    assert vector["confluent_schema_id"] == schema_id == codec.contract_schema_id(schema)
    single, confluent = bytes.fromhex(vector["single_object_hex"]), bytes.fromhex(vector["confluent_hex"])
    assert single[:2] == b"\xc3\x01" and single[2:10] == fingerprint
    assert confluent[:1] == b"\x00" and int.from_bytes(confluent[1:5], "big") == schema_id
    assert single[10:] == confluent[5:], "the two framings carry the same body"


# -- the codec (fastavro) -----------------------------------------------------------------------


@pytest.mark.parametrize("vector", ALL, ids=_ids(ALL))
def test_both_framings_decode_to_the_value(vector: dict[str, Any]) -> None:
    schema, record = codec.decode_record(bytes.fromhex(vector["single_object_hex"]))
    assert schema.name == vector["type"]
    assert plain_json(schema.definition, record) == vector["value"]
    framed_schema, framed_record = codec.decode_record(bytes.fromhex(vector["confluent_hex"]))
    assert framed_schema is schema and framed_record == record
    assert codec.decode(bytes.fromhex(vector["confluent_hex"])) == codec.decode(
        bytes.fromhex(vector["single_object_hex"])
    )


@pytest.mark.parametrize("vector", ALL, ids=_ids(ALL))
def test_the_value_encodes_to_exactly_the_bytes(vector: dict[str, Any]) -> None:
    schema = event_schema(vector["type"])
    event = EVENT_MODELS[vector["type"]].model_validate(from_plain_json(schema.definition, vector["value"]))
    single = codec.encode(event)
    assert single.hex() == vector["single_object_hex"]
    assert codec.confluent_frame(single, vector["confluent_schema_id"]).hex() == vector["confluent_hex"]
    assert codec.decode(single) == event


# -- a second implementation: Apache avro, reading schemas/avro on its own ----------------------


@functools.cache
def _apache_avro_records() -> dict[str, Any]:
    """Every .avsc of the folder parsed by Apache avro into one Names (a file may reference a type
    of a later file: retried until all resolve, as in test_one_definition_per_type.py)."""
    import avro.errors
    import avro.name
    import avro.schema

    names = avro.name.Names()
    pending = {p.stem: json.loads(p.read_text()) for p in sorted(schema_dir().glob("*.avsc"))}
    parsed: dict[str, Any] = {}
    while pending:
        progress = False
        for stem, document in list(pending.items()):
            attempt = copy.deepcopy(names)
            try:
                parsed[stem] = avro.schema.make_avsc_object(document, attempt)
            except avro.errors.SchemaParseException as exc:
                if "Could not make an Avro Schema object from fr.cepbus." in str(exc):
                    continue
                raise
            names = attempt
            del pending[stem]
            progress = True
        assert progress, f"Apache avro cannot resolve {sorted(pending)}"
    return parsed


@pytest.mark.parametrize("vector", ALL, ids=_ids(ALL))
def test_apache_avro_reads_and_writes_the_same_body(vector: dict[str, Any]) -> None:
    import avro.io

    theirs = _apache_avro_records()[Path(vector["schema_file"]).stem]
    body = bytes.fromhex(vector["single_object_hex"])[codec.HEADER_LEN :]
    stream = io.BytesIO(body)
    record = avro.io.DatumReader(theirs).read(avro.io.BinaryDecoder(stream))
    assert stream.tell() == len(body), "Apache avro left bytes unread"
    assert plain_json(event_schema(vector["type"]).definition, record) == vector["value"]
    out = io.BytesIO()
    datum = from_plain_json(event_schema(vector["type"]).definition, vector["value"])
    avro.io.DatumWriter(theirs).write(datum, avro.io.BinaryEncoder(out))
    assert out.getvalue() == body


# -- signed status updates ----------------------------------------------------------------------


def _canonical_from_value(value: dict[str, Any]) -> bytes:
    """The signed bytes rebuilt from the vector's plain JSON, as schemas/vectors/README.md says (not
    through `canonical_status_bytes`): the tag, then 4-byte big-endian length + UTF-8 of each field."""
    envelope = value["envelope"]
    fields = [
        envelope["event_id"],
        envelope["event_type"],
        str(envelope["occurred_at"]),
        envelope["producer_org_id"],
        envelope["correlation_id"],
        envelope["person_pseudonym"],
        envelope["causation_id"],
        value["referral_id"],
        value["status"],
        value["actor_org_id"],
        value["reason_code"],
        value["note"],
        value["signer_org_id"],
    ]
    out = b"cep-bus/referral-status/v1"
    for field in fields:
        raw = ("" if field is None else field).encode("utf-8")
        out += struct.pack(">I", len(raw)) + raw
    return out


def test_there_are_signed_vectors_with_and_without_the_optional_signed_fields() -> None:
    assert SIGNED
    assert any(v["value"]["note"] is None for v in SIGNED)
    assert any(v["value"]["note"] and not v["value"]["note"].isascii() for v in SIGNED)


@pytest.mark.parametrize("vector", SIGNED, ids=_ids(SIGNED))
def test_the_test_key_is_the_documented_one_and_no_development_key(vector: dict[str, Any]) -> None:
    section = vector["signature"]
    seed = bytes.fromhex(section["test_seed_hex"])
    assert (
        seed
        == hashlib.sha256(TEST_KEY_TAG).digest()
        == hashlib.sha256(b"cep-bus golden-vector test key v1").digest()
    )
    key = Ed25519PrivateKey.from_private_bytes(seed)
    assert public_key_b64(key) == section["public_key_b64"]
    assert not is_development_key(section["signer_org_id"], section["public_key_b64"])
    assert not is_development_authority_key(section["public_key_b64"])


@pytest.mark.parametrize("vector", SIGNED, ids=_ids(SIGNED))
def test_the_status_update_is_signed_by_the_test_key(vector: dict[str, Any]) -> None:
    section, value = vector["signature"], vector["value"]
    canonical = bytes.fromhex(section["canonical_bytes_hex"])
    assert value["signature"] == section["signature_hex"]
    assert value["signer_org_id"] == section["signer_org_id"]
    assert _canonical_from_value(value) == canonical
    update = codec.decode(bytes.fromhex(vector["single_object_hex"]))
    assert isinstance(update, ReferralStatusChanged)
    assert canonical_status_bytes(update) == canonical
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(section["public_key_b64"]))
    public.verify(bytes.fromhex(section["signature_hex"]), canonical)  # raises if it does not verify
    assert signature_valid(update, public)
    seed = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(section["test_seed_hex"]))
    assert seed.sign(canonical).hex() == section["signature_hex"], "Ed25519 is deterministic"


@pytest.mark.parametrize("vector", SIGNED, ids=_ids(SIGNED))
def test_a_flipped_bit_anywhere_in_the_signed_bytes_does_not_verify(vector: dict[str, Any]) -> None:
    section = vector["signature"]
    canonical = bytes.fromhex(section["canonical_bytes_hex"])
    signature = bytes.fromhex(section["signature_hex"])
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(section["public_key_b64"]))
    for position in range(len(canonical)):
        forged = bytearray(canonical)
        forged[position] ^= 1 << (position % 8)
        with pytest.raises(InvalidSignature):
            public.verify(signature, bytes(forged))
    update = codec.decode(bytes.fromhex(vector["single_object_hex"]))
    assert isinstance(update, ReferralStatusChanged)
    moved = update.model_copy(update={"note": (update.note or "") + "."})
    assert not signature_valid(moved, public), "a changed note keeps no signature"


# -- what the vectors link to -------------------------------------------------------------------


def test_the_applied_verdict_carries_the_accepted_update_as_received() -> None:
    (verdict,) = _committed()["fr.cepbus.ReferralUpdateVerdict"]
    accepted = {v["value"]["envelope"]["event_id"]: v for v in SIGNED}[verdict["value"]["update_event_id"]]
    assert verdict["value"]["signed_update"] == accepted["single_object_hex"]


def test_the_checkpoint_note_is_signed_by_the_test_key_under_the_log_origin() -> None:
    (vector,) = _committed()["fr.cepbus.CheckpointPublished"]
    value = vector["value"]
    public = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(TEST_KEY_TAG).digest()).public_key()
    raw = base64.b64decode(public_key_b64(public))
    checkpoint = open_checkpoint(
        value["signed_note"], Verifier(value["origin"], key_id(value["origin"], raw), raw)
    )
    assert (checkpoint.origin, checkpoint.size) == (value["origin"], value["tree_size"])
    assert base64.b64encode(checkpoint.root).decode() == value["root_hash_b64"]


def run_node_check(vectors_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(NODE_DIR / "vectors.js"), str(schema_dir()), str(vectors_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_vectors_hold_in_node_with_avsc_and_node_crypto() -> None:
    """The second language: tests/node/vectors.js decodes, re-encodes, re-signs and verifies every
    vector with avsc and node:crypto Ed25519, through tests/node/lib/contract.js."""
    require_node("avsc")
    done = run_node_check(VECTORS)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    expected = [v for path in sorted(VECTORS.glob("fr.cepbus.*.json")) for v in json.loads(path.read_text())]
    assert summary["vectors"] == len(expected) and summary["types"] == len(event_schemas())
    assert summary["signatures"] == sum(1 for v in expected if "signature" in v) >= 2
    assert summary["forgeries_refused"] > 0


@pytest.mark.parametrize("field", ["single_object_hex", "signature_hex"])
def test_the_node_check_fails_a_vector_that_is_off_by_one_bit(tmp_path: Path, field: str) -> None:
    require_node("avsc")
    folder = tmp_path / "vectors"
    shutil.copytree(VECTORS, folder)
    path = folder / "fr.cepbus.ReferralStatusChanged.json"
    vectors = json.loads(path.read_text())
    holder = vectors[0]["signature"] if field == "signature_hex" else vectors[0]
    raw = bytearray(bytes.fromhex(holder[field]))
    raw[-1] ^= 0x01
    holder[field] = raw.hex()
    path.write_text(json.dumps(vectors))
    failed = run_node_check(folder)
    assert failed.returncode == 1 and failed.stdout == ""
    assert "besancon-accepted" in failed.stderr
