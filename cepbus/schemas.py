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
    configured = os.environ.get("CEPBUS_SCHEMA_DIR")
    if configured:
        return Path(configured)
    return _default_schema_dir()


@functools.cache
def _default_schema_dir() -> Path:
    """Resolved once: every encode and decode asks, and resolving a path costs file-system calls."""
    source_tree = Path(__file__).resolve().parent.parent / "schemas" / "avro"
    if source_tree.is_dir():
        return source_tree
    return Path(__file__).resolve().parent / "_schemas"


@dataclass(frozen=True)
class EventSchema:
    """One event type of the contract, ready for encoding and decoding."""

    name: str  # full name, e.g. fr.cepbus.IntakeRegistered
    parsed: Any  # fastavro parsed schema (named types expanded)
    canonical_form: str  # Avro Parsing Canonical Form
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, 8 bytes little-endian

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    def field_names(self) -> list[str]:
        return [field["name"] for field in self.parsed["fields"]]


def _is_event(raw: Any) -> bool:
    """An event is a record whose first field is the common envelope."""
    return (
        isinstance(raw, dict)
        and raw.get("type") == "record"
        and bool(raw.get("fields"))
        and raw["fields"][0]["name"] == "envelope"
    )


@functools.lru_cache(maxsize=4)
def _load(directory: str) -> dict[str, EventSchema]:
    events: dict[str, EventSchema] = {}
    for path in sorted(Path(directory).glob("*.avsc")):
        parsed: dict[str, Any] = fastavro.schema.load_schema(str(path), _write_hint=False)  # type: ignore[assignment]
        if not _is_event(parsed):
            continue
        canonical = fastavro.schema.to_parsing_canonical_form(parsed)
        fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
        name: str = parsed["name"]
        if path.stem != name:
            raise ValueError(f"{path.name} defines {name}; the file must be named {name}.avsc")
        events[name] = EventSchema(name, parsed, canonical, fingerprint)
    if not events:
        raise FileNotFoundError(f"no event schema found in {directory}")
    return events


def event_schemas() -> dict[str, EventSchema]:
    """All event schemas of the contract, by full name."""
    return _load(_schema_dir_key())


def _schema_dir_key() -> str:
    return os.environ.get("CEPBUS_SCHEMA_DIR") or str(_default_schema_dir())


def event_schema(name: str) -> EventSchema:
    """One event schema by full name (`fr.cepbus.X`) or short name (`X`)."""
    schemas = event_schemas()
    full = name if "." in name else f"{EVENT_NAMESPACE}.{name}"
    try:
        return schemas[full]
    except KeyError:
        raise KeyError(f"unknown event schema {name!r}") from None


def by_fingerprint() -> dict[bytes, EventSchema]:
    """The lookup a decoder needs: fingerprint -> writer schema (built once per schema directory:
    the decoder asks for it on every message)."""
    return _by_fingerprint(_schema_dir_key())


@functools.lru_cache(maxsize=4)
def _by_fingerprint(directory: str) -> dict[bytes, EventSchema]:
    return {schema.fingerprint: schema for schema in _load(directory).values()}
