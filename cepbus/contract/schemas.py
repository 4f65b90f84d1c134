"""The Avro contract: every `.avsc` in `schemas/avro`, parsed once, indexed by name and fingerprint.

The files are the single source of truth. A file is named after the full name of the type it
defines (`fr.cepbus.Envelope.avsc`) so that fastavro resolves cross-file references on its own.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro.schema

EVENT_NAMESPACE = "fr.cepbus"


def schema_dir() -> Path:
    """Where the `.avsc` files live: `CEPBUS_SCHEMA_DIR`, the source tree, or the installed copy."""
    return _schema_dir(os.environ.get("CEPBUS_SCHEMA_DIR"))


@functools.lru_cache(maxsize=4)
def _schema_dir(configured: str | None) -> Path:
    if configured:
        return Path(configured)
    return _default_schema_dir()


@functools.lru_cache(maxsize=1)
def _default_schema_dir() -> Path:
    """Resolved once: every decode asks for the directory, and resolving it cost more than the decode."""
    package = Path(__file__).resolve().parent.parent  # cepbus/
    source_tree = package.parent / "schemas" / "avro"
    if source_tree.is_dir():
        return source_tree
    return package / "_schemas"


@dataclass(frozen=True)
class EventSchema:
    """One record type of the contract, ready for encoding and decoding."""

    name: str  # full name, e.g. fr.cepbus.IntakeRegistered
    definition: dict[str, Any]  # the schema as loaded, named types inlined at first use
    parsed: Any  # fastavro's parsed form (parsed once: fastavro re-parses a raw schema on every call)
    canonical_form: str  # Avro Parsing Canonical Form
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, 8 bytes little-endian
    reader: Any = None  # for a released older version: the current parsed schema to resolve it into

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def is_event(self) -> bool:
        """An event is a record whose first field is the common envelope."""
        fields = self.definition.get("fields") or []
        return bool(fields) and fields[0]["name"] == "envelope"


@functools.lru_cache(maxsize=4)
def _load_records(directory: str) -> dict[str, EventSchema]:
    """Every top-level record schema of the directory (events and other records, e.g. ledger leaves)."""
    records: dict[str, EventSchema] = {}
    for path in sorted(Path(directory).glob("*.avsc")):
        definition: dict[str, Any] = fastavro.schema.load_schema(str(path), _write_hint=False)  # type: ignore[assignment]
        if not isinstance(definition, dict) or definition.get("type") != "record":
            continue
        name: str = definition["name"]
        if path.stem != name:
            raise ValueError(f"{path.name} defines {name}; the file must be named {name}.avsc")
        canonical = fastavro.schema.to_parsing_canonical_form(definition)
        fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
        parsed = fastavro.parse_schema(definition)
        records[name] = EventSchema(name, definition, parsed, canonical, fingerprint)
    return records


@functools.lru_cache(maxsize=4)
def _load(directory: str) -> dict[str, EventSchema]:
    events = {name: schema for name, schema in _load_records(directory).items() if schema.is_event}
    if not events:
        raise FileNotFoundError(f"no event schema found in {directory}")
    return events


def record_schema(name: str) -> EventSchema:
    """Any top-level record of the contract by full name, e.g. fr.cepbus.LedgerRecord."""
    try:
        return _load_records(str(schema_dir()))[name]
    except KeyError:
        raise KeyError(f"unknown record schema {name!r}") from None


def event_schemas() -> dict[str, EventSchema]:
    """All event schemas of the contract, by full name."""
    return _load(str(schema_dir()))


def event_schema(name: str) -> EventSchema:
    """One event schema by full name (`fr.cepbus.X`) or short name (`X`)."""
    schemas = event_schemas()
    full = name if "." in name else f"{EVENT_NAMESPACE}.{name}"
    try:
        return schemas[full]
    except KeyError:
        raise KeyError(f"unknown event schema {name!r}") from None


def by_fingerprint() -> dict[bytes, EventSchema]:
    """The lookup a decoder needs: fingerprint -> writer schema (built once per schema directory).

    Besides the current schemas it holds every released older version (`released/<name>/v<N>.avsc`,
    kept by the evolution gate), with `reader` set to the current schema: an event written by a
    producer not yet upgraded is read by Avro schema resolution instead of being dead-lettered."""
    return _by_fingerprint(str(schema_dir()))


@functools.lru_cache(maxsize=4)
def _by_fingerprint(directory: str) -> dict[bytes, EventSchema]:
    current = _load(directory)
    index: dict[bytes, EventSchema] = {}
    for path in sorted(Path(directory).glob("released/*/v*.avsc")):
        schema = current.get(path.parent.name)
        if schema is None:
            continue  # a released type no longer in the contract: nothing to resolve it into
        definition: dict[str, Any] = fastavro.schema.load_schema(str(path), _write_hint=False)  # type: ignore[assignment]
        canonical = fastavro.schema.to_parsing_canonical_form(definition)
        fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
        if fingerprint != schema.fingerprint:
            parsed = fastavro.parse_schema(definition)
            index[fingerprint] = EventSchema(
                schema.name, definition, parsed, canonical, fingerprint, schema.parsed
            )
    index.update((schema.fingerprint, schema) for schema in current.values())
    return index
