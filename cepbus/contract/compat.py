"""The schema evolution gate: Avro schema-resolution rules, applied to every released version.

Every event schema that has been released is kept, self-contained (named types inlined), as
`schemas/avro/released/<full name>/v<N>.avsc`. A change to `schemas/avro` passes only if the current
schema resolves against every earlier version (transitive):

- FULL_TRANSITIVE for the events the ledger records: an auditor's old reader must read new entries
  (forward) and today's reader must read entries written years ago (backward);
- BACKWARD_TRANSITIVE for the rest (dead letters and any event no ledger keeps).

Resolution follows the Avro specification ("Schema Resolution"): a reader field absent from the
writer needs a default; enum symbols the writer may send must exist in the reader (or the reader
enum has a default); types match or are promotable (int -> long -> float -> double, string <-> bytes);
unions resolve branch by branch. Every problem names the field path, e.g.
`fr.cepbus.IntakeRegistered.profile.birth_year`.

`python -m cepbus.contract.compat check` runs the gate; `python -m cepbus.contract.compat release NAME`
stores the current schema of NAME as its next released version.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import fastavro.schema

from cepbus.contract.schemas import EventSchema, event_schemas, record_schema, schema_dir

RELEASED_DIR = "released"

_PROMOTIONS: dict[str, frozenset[str]] = {
    # writer type -> reader types it may be read as
    "int": frozenset({"int", "long", "float", "double"}),
    "long": frozenset({"long", "float", "double"}),
    "float": frozenset({"float", "double"}),
    "string": frozenset({"string", "bytes"}),
    "bytes": frozenset({"bytes", "string"}),
}


class Compatibility(StrEnum):
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"


@dataclass(frozen=True)
class Incompatibility:
    """One reason why data written with one schema cannot be read with another."""

    path: str  # dotted field path from the record's full name
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


# -- schema resolution (reader reads data written by writer) ---------------------------------------


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema["type"])


def _named_lookup(schema: Any, named: dict[str, Any]) -> Any:
    """Collect named types (a schema mentions each in full once, then by name) and resolve names."""
    if isinstance(schema, str):
        return named.get(schema, schema)
    if isinstance(schema, list):
        for branch in schema:
            _named_lookup(branch, named)
        return schema
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed") and "name" in schema:
        named.setdefault(schema["name"], schema)
    if kind in ("record", "error"):
        for field in schema.get("fields", []):
            _named_lookup(field["type"], named)
    elif kind == "array":
        _named_lookup(schema["items"], named)
    elif kind == "map":
        _named_lookup(schema["values"], named)
    elif isinstance(kind, dict | list):
        _named_lookup(kind, named)
    return schema


def _unwrap(schema: Any, named: Mapping[str, Any]) -> Any:
    """A name becomes its definition; `{"type": "string", "logicalType": ...}` its underlying type."""
    while True:
        if isinstance(schema, str) and schema in named:
            schema = named[schema]
            continue
        if isinstance(schema, dict) and isinstance(schema.get("type"), str | list | dict):
            kind = schema["type"]
            if kind not in ("record", "error", "enum", "fixed", "array", "map"):
                schema = kind
                continue
        return schema


def _aliases(entry: Mapping[str, Any]) -> set[str]:
    return {entry["name"], *entry.get("aliases", [])}


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Resolver:
    def __init__(self, reader_root: Any, writer_root: Any) -> None:
        self.reader_named: dict[str, Any] = {}
        self.writer_named: dict[str, Any] = {}
        _named_lookup(reader_root, self.reader_named)
        _named_lookup(writer_root, self.writer_named)
        self.seen: set[tuple[str, str]] = set()  # recursive named types are checked once

    def check(self, reader: Any, writer: Any, path: str) -> list[Incompatibility]:
        reader = _unwrap(reader, self.reader_named)
        writer = _unwrap(writer, self.writer_named)
        r_kind, w_kind = _type_name(reader), _type_name(writer)

        if w_kind == "union":
            # every branch the writer may have written must be readable
            problems: list[Incompatibility] = []
            for branch in writer:
                problems += self.check(reader, branch, path)
            return problems
        if r_kind == "union":
            for branch in reader:
                if not self.check(branch, writer, path):
                    return []
            return [Incompatibility(path, f"writer type {w_kind} matches no branch of the reader's union")]

        if w_kind in _PROMOTIONS or w_kind in ("null", "boolean", "double"):
            if r_kind == w_kind or r_kind in _PROMOTIONS.get(w_kind, frozenset()):
                return []
            return [Incompatibility(path, f"type changed from {w_kind} to {r_kind}")]
        if r_kind != w_kind:
            return [Incompatibility(path, f"type changed from {w_kind} to {r_kind}")]
        if r_kind in ("record", "error"):
            return self._records(reader, writer, path)
        if r_kind == "enum":
            return self._enums(reader, writer, path)
        if r_kind == "array":
            return self.check(reader["items"], writer["items"], f"{path}[]")
        if r_kind == "map":
            return self.check(reader["values"], writer["values"], f"{path}{{}}")
        if r_kind == "fixed":
            problems = self._names(reader, writer, path)
            if reader["size"] != writer["size"]:
                problems.append(
                    Incompatibility(path, f"fixed size changed from {writer['size']} to {reader['size']}")
                )
            return problems
        return [Incompatibility(path, f"unknown Avro type {r_kind}")]

    def _names(
        self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        r_names = {_short(n) for n in _aliases(reader)} | set(_aliases(reader))
        if writer["name"] in r_names or _short(writer["name"]) in r_names:
            return []
        return [Incompatibility(path, f"named type {writer['name']} became {reader['name']} (no alias)")]

    def _records(
        self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        key = (json.dumps(reader, sort_keys=True), json.dumps(writer, sort_keys=True))
        if key in self.seen:
            return []
        self.seen.add(key)
        problems = self._names(reader, writer, path)
        writer_fields = {field["name"]: field for field in writer["fields"]}
        for field in reader["fields"]:
            field_path = f"{path}.{field['name']}"
            match = next((writer_fields[name] for name in _aliases(field) if name in writer_fields), None)
            if match is None:
                if "default" not in field:
                    problems.append(
                        Incompatibility(
                            field_path,
                            "field is missing on one side and has no default "
                            "(removed, renamed, or added without a default)",
                        )
                    )
                continue
            problems += self.check(field["type"], match["type"], field_path)
        return problems

    def _enums(
        self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str
    ) -> list[Incompatibility]:
        problems = self._names(reader, writer, path)
        unknown = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if unknown and "default" not in reader:
            problems.append(
                Incompatibility(
                    path,
                    f"enum symbol(s) {', '.join(unknown)} unknown to the reader, which has no default",
                )
            )
        return problems


def can_read(reader: Any, writer: Any) -> list[Incompatibility]:
    """Why a reader with schema `reader` cannot read data written with `writer` (empty: it can)."""
    root = reader["name"] if isinstance(reader, dict) and "name" in reader else _type_name(reader)
    return _Resolver(reader, writer).check(reader, writer, root)


def check_change(current: Any, earlier: Any, mode: Compatibility) -> list[Incompatibility]:
    """Problems of `current` against one earlier version under `mode` (per version, not transitive)."""
    problems = [
        Incompatibility(p.path, f"new readers cannot read old data: {p.reason}")
        for p in can_read(current, earlier)
    ]
    if mode is Compatibility.FULL_TRANSITIVE:
        problems += [
            Incompatibility(p.path, f"old readers cannot read new data: {p.reason}")
            for p in can_read(earlier, current)
        ]
    return problems


# -- released versions -----------------------------------------------------------------------------


def released_dir(base: Path | None = None) -> Path:
    return (base or schema_dir()) / RELEASED_DIR


def released_versions(name: str, base: Path | None = None) -> list[tuple[int, Any]]:
    """Released versions of one event schema, oldest first, as (version number, schema)."""
    directory = released_dir(base) / name
    if not directory.is_dir():
        return []
    versions: list[tuple[int, Any]] = []
    for path in directory.glob("v*.avsc"):
        try:
            number = int(path.stem[1:])
        except ValueError:
            raise ValueError(f"{path}: released versions are named v<N>.avsc") from None
        versions.append((number, json.loads(path.read_text(encoding="utf-8"))))
    return sorted(versions, key=lambda item: item[0])


#: The ledger's leaf record: auditors decode leaves written years apart, so it evolves FULL_TRANSITIVE.
LEDGER_LEAF_RECORD = "fr.cepbus.LedgerRecord"


def compatibility_for(name: str) -> Compatibility:
    """FULL_TRANSITIVE for what the ledger keeps for ever (its leaves and the events they hold),
    BACKWARD_TRANSITIVE otherwise."""
    from cepbus.contract.topics import LEDGER_TOPICS

    ledger_records = {spec.payload.avro_name for spec in LEDGER_TOPICS} | {LEDGER_LEAF_RECORD}
    return Compatibility.FULL_TRANSITIVE if name in ledger_records else Compatibility.BACKWARD_TRANSITIVE


@dataclass(frozen=True)
class GateResult:
    name: str
    mode: Compatibility
    checked_versions: list[int]
    problems: list[str]


def check_schema(
    name: str, current: Any, earlier: Iterable[tuple[int, Any]], mode: Compatibility
) -> GateResult:
    problems: list[str] = []
    numbers: list[int] = []
    for number, schema in earlier:
        numbers.append(number)
        problems += [
            f"{name} vs released v{number} ({mode}): {p}" for p in check_change(current, schema, mode)
        ]
    return GateResult(name, mode, numbers, problems)


def check_all(schemas: Mapping[str, EventSchema] | None = None, base: Path | None = None) -> list[GateResult]:
    """Every current event schema and the ledger's leaf record against all their released versions; a
    new schema (none released) passes."""
    current = (
        schemas
        if schemas is not None
        else {**event_schemas(), LEDGER_LEAF_RECORD: record_schema(LEDGER_LEAF_RECORD)}
    )
    return [
        check_schema(name, schema.definition, released_versions(name, base), compatibility_for(name))
        for name, schema in sorted(current.items())
    ]


def release(name: str, base: Path | None = None) -> Path:
    """Store the current schema of `name` as its next released version (self-contained JSON)."""
    directory = base or schema_dir()
    # read from disk, not the per-process cache: the file may have just been edited
    parsed: Any = fastavro.schema.load_schema(str(directory / f"{name}.avsc"), _write_hint=False)
    versions = released_versions(name, base)
    if versions and versions[-1][1] == parsed:
        raise ValueError(f"{name} is unchanged since v{versions[-1][0]}: nothing to release")
    result = check_schema(name, parsed, versions, compatibility_for(name))
    if result.problems:
        raise ValueError("incompatible change, not released:\n" + "\n".join(result.problems))
    number = versions[-1][0] + 1 if versions else 1
    target = released_dir(base) / name / f"v{number}.avsc"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(parsed, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["release"] and len(args) >= 2:
        for name in args[1:]:
            full = name if "." in name else f"fr.cepbus.{name}"
            print(f"released {release(full)}")
        return 0
    if args[:1] in (["check"], []):
        failed = False
        for result in check_all():
            status = "ok" if not result.problems else "INCOMPATIBLE"
            versions = ", ".join(f"v{n}" for n in result.checked_versions) or "none released yet"
            print(f"{status:12} {result.name} ({result.mode}) against {versions}")
            for problem in result.problems:
                print(f"    {problem}")
            failed = failed or bool(result.problems)
        return 1 if failed else 0
    print("usage: python -m cepbus.contract.compat [check | release NAME...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
