"""The contract folder loads into one registry in any Avro implementation: every named type is defined
in exactly one `.avsc` file, and fastavro, Apache `avro` (Python) and `avsc` (Node.js, npm) agree on each
record's Parsing Canonical Form and CRC-64-AVRO fingerprint."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import fastavro.schema

from cepbus.contract.schemas import _load_records, schema_dir
from tests.support.node import NODE_DIR, require_node


def _defined_names(schema: Any, namespace: str | None, out: list[str]) -> None:
    """Every named type a schema defines (not the names it only references)."""
    if isinstance(schema, list):
        for branch in schema:
            _defined_names(branch, namespace, out)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            name = schema["name"]
            space = schema.get("namespace", namespace)
            full = name if "." in name or not space else f"{space}.{name}"
            out.append(full)
            namespace = full.rsplit(".", 1)[0] if "." in full else namespace
        for field in schema.get("fields", []):
            _defined_names(field["type"], namespace, out)
        for key in ("items", "values"):
            if key in schema:
                _defined_names(schema[key], namespace, out)
        if isinstance(kind, dict | list):
            _defined_names(kind, namespace, out)


def definitions(directory: Path) -> Counter[str]:
    names: list[str] = []
    for path in sorted(directory.glob("*.avsc")):
        _defined_names(json.loads(path.read_text()), None, names)
    return Counter(names)


def test_every_named_type_is_defined_once_in_its_own_file() -> None:
    counts = definitions(schema_dir())
    assert counts and all(n == 1 for n in counts.values()), {k: v for k, v in counts.items() if v > 1}
    assert {p.stem for p in schema_dir().glob("*.avsc")} <= set(counts)  # each file defines its own name


def folder_with_a_second_definition(tmp_path: Path) -> Path:
    """The folder as it was: fr.cepbus.ReferralStatus inline in ReferralStatusChanged as well as in its
    own file."""
    copy = tmp_path / "avro"
    shutil.copytree(schema_dir(), copy, ignore=shutil.ignore_patterns("released"))
    changed = copy / "fr.cepbus.ReferralStatusChanged.avsc"
    document = json.loads(changed.read_text())
    status = json.loads((copy / "fr.cepbus.ReferralStatus.avsc").read_text())
    document["fields"] = [{**f, "type": status} if f["name"] == "status" else f for f in document["fields"]]
    changed.write_text(json.dumps(document))
    return copy


def test_a_type_defined_twice_is_caught(tmp_path: Path) -> None:
    assert definitions(folder_with_a_second_definition(tmp_path))["fr.cepbus.ReferralStatus"] == 2


def test_avsc_refuses_a_type_defined_twice(tmp_path: Path) -> None:
    require_node("avsc")
    copy = folder_with_a_second_definition(tmp_path)
    failed = subprocess.run(
        ["node", str(NODE_DIR / "canonical.js"), str(copy)], capture_output=True, text=True
    )
    assert failed.returncode != 0 and "duplicate" in failed.stderr.lower()


def _apache_avro_canonical_forms(directory: Path) -> dict[str, str]:
    import avro.name
    import avro.schema

    names = avro.name.Names()
    pending = {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.avsc"))}
    parsed: dict[str, Any] = {}
    while pending:  # a file may reference a type defined in a later one
        progress = False
        for stem, document in list(pending.items()):
            attempt = copy.deepcopy(names)  # a failed parse leaves names behind: try on a copy
            try:
                parsed[stem] = avro.schema.make_avsc_object(document, attempt)
            except avro.errors.SchemaParseException as exc:
                if "Could not make an Avro Schema object from fr.cepbus." in str(exc):
                    continue  # references a type not parsed yet
                raise
            names = attempt
            del pending[stem]
            progress = True
        assert progress, f"Apache avro cannot resolve {sorted(pending)}"
    return {stem: schema.canonical_form for stem, schema in parsed.items() if schema.type == "record"}


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _primitives_simple(node: Any) -> Any:
    """The specification's [PRIMITIVES] rule ("convert primitive schemas to their simple form"), which
    Apache avro 1.12 (Python) skips where it stripped a logical type: it writes {"type":"string"} for
    {"type":"string","logicalType":"uuid"}. Seen here, on this folder; the rest of its form is kept."""
    if isinstance(node, dict):
        if set(node) == {"type"} and node["type"] in _PRIMITIVES:
            return node["type"]
        return {key: _primitives_simple(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_primitives_simple(item) for item in node]
    return node


def test_fastavro_and_apache_avro_agree_on_every_record() -> None:
    ours = _load_records(str(schema_dir()))
    theirs = {
        name: json.dumps(_primitives_simple(json.loads(form)), separators=(",", ":"))
        for name, form in _apache_avro_canonical_forms(schema_dir()).items()
    }
    assert set(ours) == set(theirs)
    for name, record in ours.items():
        assert theirs[name] == record.canonical_form, name
        crc = bytes.fromhex(fastavro.schema.fingerprint(theirs[name], "CRC-64-AVRO"))
        assert crc == record.fingerprint


def test_avsc_agrees_with_fastavro_on_every_record() -> None:
    require_node("avsc")
    done = subprocess.run(
        ["node", str(NODE_DIR / "canonical.js"), str(schema_dir())],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs: dict[str, str] = json.loads(done.stdout)
    ours = _load_records(str(schema_dir()))
    assert set(theirs) == set(ours)
    for name, record in ours.items():
        assert theirs[name] == record.canonical_form, name
        assert bytes.fromhex(fastavro.schema.fingerprint(theirs[name], "CRC-64-AVRO")) == record.fingerprint
