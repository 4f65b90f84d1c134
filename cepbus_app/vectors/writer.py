"""The golden vector files (`schemas/vectors/`): each example event as plain JSON beside its exact bytes
in both framings and its statement signature by a test key of its producer (`fr.cepbus.X.json`), and
batches of several statements of one producer signed together (`statement-batches.json`).

Why: another implementation (another language, another Avro library) proves it speaks the contract by
decoding these bytes to these values, encoding these values to these bytes, and reproducing each
statement's digest, batch root, signed message, signature and `cepbus-signature` header, without a
broker and without running any Python. Everything is deterministic (fixed ids and times; Ed25519 is
deterministic), so `cep-bus vectors` rewrites the same files until the contract changes, and
`tests/unit/contract/test_golden_vectors.py` fails while the committed files are stale.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cepbus.auditlog import merkle
from cepbus.contract import codec
from cepbus.contract.models import EVENT_MODELS
from cepbus.contract.plain_json import plain_json
from cepbus.contract.schemas import event_schema
from cepbus.contract.statements import StatementSignature, signed_message, statement_digest
from cepbus.trust.keys import raw_public_key
from cepbus_app.vectors.examples import (
    BATCHES,
    Batch,
    Example,
    examples,
    statement_test_key,
    statement_test_seed,
    statement_test_signer,
)

__all__ = ["BATCHES_FILE", "build_batch", "build_vector", "rendered_files", "vectors", "write_vectors"]

#: The batch vectors' file, beside the per-type files (and not named like them: it holds no event type).
BATCHES_FILE = "statement-batches.json"


def _signer_section(org_id: str) -> dict[str, Any]:
    """Who signs, with everything an implementer needs to sign as it: the seed, the public key, the key
    id (`cepbus.trust.keys.key_id`, as a directory would list it)."""
    key = statement_test_key(org_id)
    return {
        "key_id": statement_test_signer(org_id).key_id,
        "public_key_b64": base64.b64encode(raw_public_key(key)).decode(),
        "signer_org_id": org_id,
        "test_seed_hex": statement_test_seed(org_id).hex(),
    }


def _signed(signature: StatementSignature, root: bytes) -> dict[str, Any]:
    """What the signature of a batch whose tree has `root` is made of, and the header a member carries."""
    return {
        "root_hex": root.hex(),
        "signature_hex": signature.signature.hex(),
        "signed_message_hex": signed_message(signature.size, root).hex(),
    }


def statement_section(event_bytes: bytes, org_id: str) -> dict[str, Any]:
    """The statement signature of one event alone (a batch of one: no path, the root is its leaf)."""
    [signature] = statement_test_signer(org_id).sign([event_bytes])
    digest = statement_digest(event_bytes)
    root = signature.verify(digest, statement_test_key(org_id).public_key())  # the test of the test key
    return dict(
        sorted(
            {
                **_signer_section(org_id),
                **_signed(signature, root),
                "digest_hex": digest.hex(),
                "header": signature.header().decode(),
            }.items()
        )
    )


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
        "statement": statement_section(single, event.envelope.producer_org_id),
        "type": schema.name,
        "value": plain_json(schema.definition, event.model_dump(mode="python")),
    }
    return dict(sorted(vector.items()))


def build_batch(batch: Batch, by_name: dict[str, Example]) -> dict[str, Any]:
    """One batch vector: its members' statements signed together by their one producer, each member
    with its index, digest, leaf hash, inclusion path (leaf side first) and header."""
    members = [by_name[name] for name in batch.members]
    producers = {member.event.envelope.producer_org_id for member in members}
    if len(producers) != 1 or len(members) < 2:
        raise ValueError(f"{batch.name}: a batch vector is two events or more of one producer")
    [org_id] = producers
    statements = [codec.encode(member.event) for member in members]
    signatures = statement_test_signer(org_id).sign(statements)
    public = statement_test_key(org_id).public_key()
    roots = {s.verify(statement_digest(b), public) for s, b in zip(signatures, statements, strict=True)}
    [root] = roots
    listed = []
    for example, statement, signature in zip(members, statements, signatures, strict=True):
        digest = statement_digest(statement)
        listed.append(
            {
                "digest_hex": digest.hex(),
                "header": signature.header().decode(),
                "index": signature.index,
                "leaf_hash_hex": merkle.leaf_hash(digest).hex(),
                "path_hex": [node.hex() for node in signature.path],
                "single_object_hex": statement.hex(),
                "vector": example.name,
            }
        )
    return dict(
        sorted(
            {
                **_signer_section(org_id),
                **_signed(signatures[0], root),
                "description": batch.description,
                "members": listed,
                "name": batch.name,
                "size": len(members),
            }.items()
        )
    )


def vectors() -> dict[str, list[dict[str, Any]]]:
    """Every vector, by event type (full name), in the order of `EVENT_MODELS`; a type without an
    example is an error, so a new event type cannot ship without its vectors."""
    by_type: dict[str, list[dict[str, Any]]] = {name: [] for name in EVENT_MODELS}
    for example in examples():
        by_type[example.event.avro_name].append(build_vector(example))
    missing = sorted(name for name, found in by_type.items() if not found)
    if missing:
        raise ValueError(f"no golden vector for {missing}: add an example to cepbus_app/vectors/examples.py")
    return by_type


def batches() -> list[dict[str, Any]]:
    by_name = {example.name: example for example in examples()}
    return [build_batch(batch, by_name) for batch in BATCHES]


def _text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def rendered_files() -> dict[str, str]:
    """File name -> text: `fr.cepbus.X.json`, a JSON list of that type's vectors, and
    `statement-batches.json`, a JSON list of batch vectors; UTF-8, indented, with a trailing newline.
    (README.md beside them is written by hand.)"""
    files = {f"{name}.json": _text(found) for name, found in vectors().items()}
    files[BATCHES_FILE] = _text(batches())
    return files


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
