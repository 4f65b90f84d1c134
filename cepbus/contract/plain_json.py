"""Plain JSON: an event's Avro value written with JSON types only, and back.

The golden vectors (`schemas/vectors/`, written by `cep-bus vectors`) give each example's value in this
form beside its bytes, so that another implementation can compare what it decodes with what they say;
`schemas/vectors/README.md` states the rules for implementers. The mapping follows the Avro schema:
bytes and fixed as lowercase hex, timestamp-millis as an integer of milliseconds, dates as days since
1970-01-01, enums as their symbols, and a `["null", X]` union as null or the bare value.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

__all__ = ["from_plain_json", "plain_json"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)


def plain_json(schema: Any, datum: Any) -> Any:
    """`datum` (a model dump or a decoded record) as plain JSON, walking the Avro `schema` (named
    types inlined at first use, as `EventSchema.definition` holds them)."""
    return _walk(schema, datum, {}, None, to_plain=True)


def from_plain_json(schema: Any, value: Any) -> Any:
    """The reverse of `plain_json`: the Python record fastavro, Apache avro and the models take
    (aware UTC datetimes, dates, bytes)."""
    return _walk(schema, value, {}, None, to_plain=False)


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _walk(schema: Any, datum: Any, names: dict[str, Any], namespace: str | None, *, to_plain: bool) -> Any:
    if isinstance(schema, list):
        if datum is None:
            if "null" not in schema:
                raise ValueError(f"null for a union without null: {schema}")
            return None
        branches = [branch for branch in schema if branch != "null"]
        if len(branches) != 1:  # unwrapping is unambiguous only for ["null", X]
            raise ValueError(f"plain JSON supports only ['null', X] unions, not {schema}")
        return _walk(branches[0], datum, names, namespace, to_plain=to_plain)
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _primitive(schema, None, datum, to_plain)
        named = names[_full_name(schema, namespace)]
        return _walk(named, datum, names, namespace, to_plain=to_plain)
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return _walk(kind, datum, names, namespace, to_plain=to_plain)
    if kind in ("record", "error", "enum", "fixed"):
        full = _full_name(schema["name"], schema.get("namespace", namespace))
        names[full] = schema
        namespace = full.rsplit(".", 1)[0] if "." in full else namespace
    if kind in ("record", "error"):
        return {
            field["name"]: _walk(field["type"], datum[field["name"]], names, namespace, to_plain=to_plain)
            for field in schema["fields"]
        }
    if kind == "enum":
        return datum.value if isinstance(datum, Enum) else str(datum)
    if kind == "array":
        return [_walk(schema["items"], item, names, namespace, to_plain=to_plain) for item in datum]
    if kind == "map":
        return {k: _walk(schema["values"], v, names, namespace, to_plain=to_plain) for k, v in datum.items()}
    if kind == "fixed":
        return datum.hex() if to_plain else bytes.fromhex(datum)
    return _primitive(kind, schema.get("logicalType"), datum, to_plain)


def _primitive(kind: str, logical: str | None, datum: Any, to_plain: bool) -> Any:
    if kind == "bytes":
        return bytes(datum).hex() if to_plain else bytes.fromhex(datum)
    if kind == "long" and logical == "timestamp-millis":
        if to_plain:
            return (datum - _EPOCH) // _MILLISECOND if isinstance(datum, datetime) else int(datum)
        return _EPOCH + int(datum) * _MILLISECOND
    if kind == "int" and logical == "date":
        if to_plain:
            return (datum - _EPOCH_DAY).days if isinstance(datum, date) else int(datum)
        return _EPOCH_DAY + timedelta(days=int(datum))
    if kind == "string":
        return str(datum.value if isinstance(datum, Enum) else datum)  # uuid.UUID, a StrEnum, a str
    return datum
