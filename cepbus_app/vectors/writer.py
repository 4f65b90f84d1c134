"""The golden vector files (`schemas/vectors/fr.cepbus.X.json`): each example event as plain JSON beside
its exact bytes in both framings and, for status updates, the signed bytes, the test key and the
signature.

Why: another implementation (another language, another Avro library) proves it speaks the contract by
decoding these bytes to these values and encoding these values to these bytes, without a broker and
without running any Python. Everything is deterministic (fixed ids and times, Ed25519 is
deterministic), so `cep-bus vectors` rewrites the same files until the contract changes, and
`tests/unit/contract/test_golden_vectors.py` fails while the committed files are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cepbus.contract import codec
from cepbus.contract.models import EVENT_MODELS, ReferralStatusChanged
from cepbus.contract.plain_json import plain_json
from cepbus.contract.schemas import event_schema
from cepbus.contract.signatures import canonical_status_bytes, public_key_b64
from cepbus_app.vectors.examples import TEST_SEED, Example, examples, vector_test_key

__all__ = ["build_vector", "rendered_files", "vectors", "write_vectors"]


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
        raise ValueError(f"no golden vector for {missing}: add an example to cepbus_app/vectors/examples.py")
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
