"""The golden vectors (schemas/vectors) are what `cep-bus vectors` generates now, and say the truth about
the contract: their bytes decode to their values and their values encode to their bytes, in fastavro (the
codec) and in Apache `avro` (a second implementation, reading the folder itself); their fingerprints and
Confluent ids are the contract's, recomputed here from the canonical form; every event's statement
signature (digest, batch root, signed message, signature, header), and the batches of several, are
rebuilt from the single-object bytes as the README says, verify with the producer's test key, and
refuse every one-bit flip of the bytes, the signature and the path; the same holds in Node.js."""

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
from cepbus.contract.signatures import public_key_b64
from cepbus.contract.statements import StatementSignature, statement_digest
from cepbus.reference import load_reference
from cepbus.reference.authorship import Authorship, AuthorshipError
from cepbus.reference.directory import load_directory
from cepbus.reference.producers import ProducerCatalog
from cepbus.trust.development import is_development_authority_key, is_development_key
from cepbus_app.vectors.examples import TEST_KEY_TAG
from cepbus_app.vectors.writer import BATCHES_FILE, rendered_files, write_vectors
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


# -- statement signatures: rebuilt from the bytes as schemas/vectors/README.md says ----------------
#
# Written from the README and RFC 9162, not through cepbus.contract.statements (which the library
# cross-checks below): the tags, the leaf and node hashes, the inclusion-path computation, the header.


def _digest(single_object: bytes) -> bytes:
    return hashlib.sha256(b"cep-bus/statement/v1\x00" + single_object).digest()


def _leaf(digest: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + digest).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _tree_root(leaves: list[bytes]) -> bytes:
    """MTH by RFC 9162's recursive definition (split at the largest power of two below n)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _node(_tree_root(leaves[:k]), _tree_root(leaves[k:]))


def _root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2's computation of the root an inclusion path leads to; None if it leads nowhere."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def _message(size: int, root: bytes) -> bytes:
    return b"cep-bus/statement-batch/v1\x00" + struct.pack(">Q", size) + root


def _header(key_id: str, signature: bytes, size: int, index: int, path: list[bytes]) -> str:
    sig, joined = base64.b64encode(signature).decode(), base64.b64encode(b"".join(path)).decode()
    return f'{{"v":1,"key":"{key_id}","sig":"{sig}","n":{size},"i":{index},"path":"{joined}"}}'


def _verifies(public: Ed25519PublicKey, signature: bytes, single_object: bytes, index: int, size: int,
              path: list[bytes]) -> bool:  # fmt: skip
    """The whole check a consumer makes, from the statement's bytes: digest, leaf, root, signature."""
    root = _root_from_path(_leaf(_digest(single_object)), index, size, path)
    if root is None:
        return False
    try:
        public.verify(signature, _message(size, root))
    except InvalidSignature:
        return False
    return True


def _flips(data: bytes) -> list[bytes]:
    """`data` with one bit flipped, for every bit."""
    out = []
    for bit in range(len(data) * 8):
        forged = bytearray(data)
        forged[bit // 8] ^= 1 << (bit % 8)
        out.append(bytes(forged))
    return out


def _public(section: dict[str, Any]) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(section["public_key_b64"]))


BATCHES = json.loads((VECTORS / BATCHES_FILE).read_text(encoding="utf-8"))
SIGNERS = sorted({v["statement"]["signer_org_id"] for v in ALL} | {b["signer_org_id"] for b in BATCHES})


def test_every_vector_carries_a_statement_signature_by_its_producer() -> None:
    for vector in ALL:
        assert vector["statement"]["signer_org_id"] == vector["value"]["envelope"]["producer_org_id"]
    assert {"cep-bus-router", "cep-bus-notifier", "cep-bus-ledger", "apec-r27", "cep-r27"} <= set(SIGNERS)


@pytest.mark.parametrize("org_id", SIGNERS)
def test_the_statement_test_keys_are_the_documented_ones_and_the_bus_refuses_them(org_id: str) -> None:
    sections = [v["statement"] for v in ALL if v["statement"]["signer_org_id"] == org_id]
    sections += [b for b in BATCHES if b["signer_org_id"] == org_id]
    seed = hashlib.sha256(b"cep-bus golden-vector statement key v1:" + org_id.encode()).digest()
    raw = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    expected_id = hashlib.sha256(b"cep-bus/partner-key/v1\n" + org_id.encode() + b"\n" + raw).hexdigest()[:16]
    for section in sections:
        assert section["test_seed_hex"] == seed.hex()
        assert section["public_key_b64"] == base64.b64encode(raw).decode()
        assert section["key_id"] == expected_id
    assert not is_development_key(org_id, raw) and not is_development_authority_key(raw)
    # the attack: a statement signed by a vector key, sent to the bus, is refused at the edge
    directory = load_directory()
    assert directory.key_by_id(expected_id) is None
    vector = next((v for v in ALL if v["statement"]["signer_org_id"] == org_id), None)
    if vector is not None:
        edge = Authorship(directory, ProducerCatalog.build(load_reference(), directory))
        with pytest.raises(AuthorshipError) as refused:
            edge.verify(bytes.fromhex(vector["single_object_hex"]), vector["statement"]["header"].encode())
        assert refused.value.reason == "unknown_key"


@pytest.mark.parametrize("vector", ALL, ids=_ids(ALL))
def test_the_statement_signature_is_rebuilt_from_the_single_object_bytes(vector: dict[str, Any]) -> None:
    section, single = vector["statement"], bytes.fromhex(vector["single_object_hex"])
    digest = _digest(single)
    assert digest.hex() == section["digest_hex"]
    root = _leaf(digest)  # a batch of one: the root is the leaf
    assert root.hex() == section["root_hex"]
    message = _message(1, root)
    assert message.hex() == section["signed_message_hex"]
    seed = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(section["test_seed_hex"]))
    signature = seed.sign(message)
    assert signature.hex() == section["signature_hex"], "Ed25519 is deterministic"
    _public(section).verify(signature, message)  # raises if it does not verify
    assert section["header"] == _header(section["key_id"], signature, 1, 0, [])
    # the library reads the same header to the same root
    parsed = StatementSignature.parse(section["header"].encode())
    assert parsed.verify(statement_digest(single), _public(section)) == root


@pytest.mark.parametrize("vector", ALL, ids=_ids(ALL))
def test_every_one_bit_flip_of_the_bytes_or_the_signature_is_refused(vector: dict[str, Any]) -> None:
    section, single = vector["statement"], bytes.fromhex(vector["single_object_hex"])
    public, signature = _public(section), bytes.fromhex(section["signature_hex"])
    assert _verifies(public, signature, single, 0, 1, [])
    assert not any(_verifies(public, signature, forged, 0, 1, []) for forged in _flips(single))
    assert not any(_verifies(public, forged, single, 0, 1, []) for forged in _flips(signature))


def test_the_batch_vectors_have_several_members_and_paths_of_several_lengths() -> None:
    by_name = {v["name"]: v for v in ALL}
    assert BATCHES and all(b["size"] > 1 and b["size"] == len(b["members"]) for b in BATCHES)
    lengths = set()
    for batch in BATCHES:
        assert [m["index"] for m in batch["members"]] == list(range(batch["size"]))
        for member in batch["members"]:
            named = by_name[member["vector"]]
            assert member["single_object_hex"] == named["single_object_hex"]
            assert named["statement"]["signer_org_id"] == batch["signer_org_id"]
            lengths.add(len(member["path_hex"]))
    assert {1, 2, 3} <= lengths


@pytest.mark.parametrize("batch", BATCHES, ids=[b["name"] for b in BATCHES])
def test_a_batch_signature_is_rebuilt_from_its_members_bytes(batch: dict[str, Any]) -> None:
    size, members = batch["size"], batch["members"]
    leaves = []
    for member in members:
        digest = _digest(bytes.fromhex(member["single_object_hex"]))
        assert digest.hex() == member["digest_hex"]
        leaves.append(_leaf(digest))
        assert leaves[-1].hex() == member["leaf_hash_hex"]
    root = _tree_root(leaves)
    assert root.hex() == batch["root_hex"]
    message = _message(size, root)
    assert message.hex() == batch["signed_message_hex"]
    seed = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(batch["test_seed_hex"]))
    signature = seed.sign(message)
    assert signature.hex() == batch["signature_hex"]
    public = _public(batch)
    for member, leaf in zip(members, leaves, strict=True):
        path = [bytes.fromhex(h) for h in member["path_hex"]]
        assert _root_from_path(leaf, member["index"], size, path) == root, member["vector"]
        assert member["header"] == _header(batch["key_id"], signature, size, member["index"], path)
        single = bytes.fromhex(member["single_object_hex"])
        assert _verifies(public, signature, single, member["index"], size, path)
        parsed = StatementSignature.parse(member["header"].encode())
        assert parsed.verify(statement_digest(single), public) == root


@pytest.mark.parametrize("batch", BATCHES, ids=[b["name"] for b in BATCHES])
def test_every_one_bit_flip_of_a_members_bytes_its_path_or_the_signature_is_refused(
    batch: dict[str, Any],
) -> None:
    public, signature, size = _public(batch), bytes.fromhex(batch["signature_hex"]), batch["size"]
    for member in batch["members"]:
        single, index = bytes.fromhex(member["single_object_hex"]), member["index"]
        path = [bytes.fromhex(h) for h in member["path_hex"]]
        assert not any(_verifies(public, signature, forged, index, size, path) for forged in _flips(single))
        for at, node in enumerate(path):
            for forged in _flips(node):
                assert not _verifies(
                    public, signature, single, index, size, [*path[:at], forged, *path[at + 1 :]]
                )
        # a path moved to another place in the batch, or cut short, proves nothing either
        assert not any(_verifies(public, signature, single, i, size, path) for i in range(size) if i != index)
        assert not _verifies(public, signature, single, index, size, path[:-1])
    first = batch["members"][0]
    single, path = bytes.fromhex(first["single_object_hex"]), [bytes.fromhex(h) for h in first["path_hex"]]
    assert not any(_verifies(public, forged, single, 0, size, path) for forged in _flips(signature))


# -- the superseded in-body signature, and what the vectors link to -------------------------------


def test_status_updates_leave_the_superseded_in_body_signature_empty() -> None:
    updates = [v for v in ALL if v["type"] == ReferralStatusChanged.avro_name]
    assert len(updates) >= 2
    assert all(v["value"]["signer_org_id"] is None and v["value"]["signature"] is None for v in updates)
    assert any(v["value"]["note"] is None for v in updates)
    assert any(v["value"]["note"] and not v["value"]["note"].isascii() for v in updates)


def test_the_applied_verdict_names_the_accepted_update_by_its_statement_digest() -> None:
    (verdict,) = _committed()["fr.cepbus.ReferralUpdateVerdict"]
    updates = {
        v["value"]["envelope"]["event_id"]: v for v in ALL if v["type"] == ReferralStatusChanged.avro_name
    }
    accepted = updates[verdict["value"]["update_event_id"]]
    assert verdict["value"]["update_digest"] == accepted["statement"]["digest_hex"]
    assert verdict["value"]["signer_key_id"] == accepted["statement"]["key_id"]
    assert verdict["value"]["signed_update"] is None  # superseded: a verdict never embeds the update


def test_the_dead_letter_keeps_its_originals_signature_header() -> None:
    (letter,) = _committed()["fr.cepbus.DeadLetter"]
    header = bytes.fromhex(letter["value"]["original_signature"])
    parsed = StatementSignature.parse(header)
    assert (parsed.size, parsed.index, parsed.path) == (1, 0, ())
    [bobigny] = [v for v in ALL if v["statement"]["signer_org_id"] == "cep-r11"]
    assert parsed.key_id == bobigny["statement"]["key_id"]  # its sender's key, kept for a replay


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


# -- the second language: Node.js ----------------------------------------------------------------


def run_node_check(vectors_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(NODE_DIR / "vectors.js"), str(schema_dir()), str(vectors_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _forgeries_expected() -> int:
    """How many one-bit forgeries the Node check must refuse: every bit of every statement's bytes and
    signature, and in each batch every bit of every member's bytes and path, and of its signature."""
    count = sum(8 * (len(v["single_object_hex"]) // 2 + 64) for v in ALL)
    for batch in BATCHES:
        count += 8 * 64
        for member in batch["members"]:
            count += 8 * (len(member["single_object_hex"]) // 2 + 32 * len(member["path_hex"]))
    return count


def test_the_vectors_hold_in_node_with_avsc_and_node_crypto() -> None:
    """The second language: tests/node/vectors.js decodes, re-encodes, rebuilds every statement's
    digest, root, signed message, signature and header with avsc and node:crypto (through
    tests/node/lib/contract.js), verifies them, and refuses every one-bit forgery."""
    require_node("avsc")
    done = run_node_check(VECTORS)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    expected = [v for path in sorted(VECTORS.glob("fr.cepbus.*.json")) for v in json.loads(path.read_text())]
    assert summary["vectors"] == len(expected) and summary["types"] == len(event_schemas())
    assert summary["statements"] == len(expected)
    assert summary["batches"] == len(BATCHES) >= 1
    assert summary["batch_members"] == sum(b["size"] for b in BATCHES)
    assert summary["forgeries_refused"] == _forgeries_expected()


def _flip_last_bit(holder: dict[str, Any], field: str) -> None:
    raw = bytearray(bytes.fromhex(holder[field]))
    raw[-1] ^= 0x01
    holder[field] = raw.hex()


def _off_by_one_bit(folder: Path, target: str) -> str:
    """Flip one bit of `target` in the copy under `folder`; the name the check must report."""
    if target.startswith("batch"):
        path = folder / BATCHES_FILE
        batches = json.loads(path.read_text())
        batch = batches[0]
        if target == "batch.signature_hex":
            _flip_last_bit(batch, "signature_hex")
        elif target == "batch.path":
            node = bytearray(bytes.fromhex(batch["members"][1]["path_hex"][0]))
            node[0] ^= 0x80
            batch["members"][1]["path_hex"][0] = node.hex()
        else:
            _flip_last_bit(batch["members"][2], "single_object_hex")
        path.write_text(json.dumps(batches))
        return str(batch["name"])
    path = folder / "fr.cepbus.ReferralStatusChanged.json"
    vectors = json.loads(path.read_text())
    if target == "single_object_hex":
        _flip_last_bit(vectors[0], "single_object_hex")
    else:
        _flip_last_bit(vectors[0]["statement"], target.split(".")[1])
    path.write_text(json.dumps(vectors))
    return str(vectors[0]["name"])


@pytest.mark.parametrize(
    "target",
    [
        "single_object_hex",
        "statement.signature_hex",
        "statement.digest_hex",
        "statement.signed_message_hex",
        "batch.signature_hex",
        "batch.path",
        "batch.member",
    ],
)
def test_the_node_check_fails_a_vector_that_is_off_by_one_bit(tmp_path: Path, target: str) -> None:
    require_node("avsc")
    folder = tmp_path / "vectors"
    shutil.copytree(VECTORS, folder)
    name = _off_by_one_bit(folder, target)
    failed = run_node_check(folder)
    assert failed.returncode == 1 and failed.stdout == ""
    assert name in failed.stderr
