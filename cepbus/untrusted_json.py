"""Reading JSON that nobody vouches for (a bundle, a directory file, an intake on stdin), in one place so
that every reader refuses the same things the same way.

Why each rule: `json.loads` keeps the last of duplicate keys, so a signed or audited document could say
two things at once; the C parser recurses, so deep nesting must end as an error rather than a crash;
a file read whole before its size is known can exhaust memory; and an error message that quotes its
input verbatim can be megabytes long or span lines. Every failure here is an `UntrustedInputError` with
a one-line message; callers map the two kinds (`UnreadableInput`: nothing could be read, `MalformedJson`:
what was read is not acceptable JSON) to their own exceptions and exit codes.

Standard library and pydantic only: the SDKs reach this module through the reference data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

__all__ = [
    "DuplicateKeys",
    "EmptyInput",
    "MalformedJson",
    "UnreadableInput",
    "UntrustedInputError",
    "clip",
    "loads_strict",
    "nesting_depth",
    "one_line",
    "read_capped",
    "short",
]


class UntrustedInputError(ValueError):
    """Input refused; the message is one line and never quotes the input at length."""


class UnreadableInput(UntrustedInputError):
    """The file could not be read, or is larger than its cap: nothing was parsed."""


class MalformedJson(UntrustedInputError):
    """The bytes are not strict UTF-8 JSON within the bounds asked for."""


class EmptyInput(MalformedJson):
    """Nothing but whitespace: callers usually say what they expected instead."""


class DuplicateKeys(MalformedJson):
    """An object names a key twice; `keys` are its repeated keys, in the order they repeat."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        super().__init__(f"not JSON: {clip(f'duplicate key {short(keys[0], 40)}', 160)}")
        self.keys = keys


class _Repeated(ValueError):
    """Raised inside the parser's hook; `loads_strict` turns it into `DuplicateKeys`."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        super().__init__(keys)
        self.keys = keys


def clip(text: str, limit: int) -> str:
    """`text` on one line (runs of whitespace made one space), at most `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(value: Any, limit: int = 60) -> str:
    """A short, one-line description of a JSON value (never the repr of a whole huge value)."""
    if isinstance(value, str):
        text = repr(value[:limit]) + ("..." if len(value) > limit else "")
    elif isinstance(value, list):
        text = f"an array of {len(value)}"
    elif isinstance(value, dict):
        text = f"an object of {len(value)} fields"
    else:
        text = repr(value)
    return clip(text, limit + 10)


def one_line(error: ValidationError, *, limit: int = 3) -> str:
    """One line naming each failing field (at most `limit` of them), inputs shortened."""
    items = error.errors()
    parts = []
    for item in items[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "document"
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown field {where!r}")
        elif item["type"] == "missing":
            parts.append(f"missing field {where!r}")
        else:
            parts.append(f"{where}: {item['msg']} (got {short(item.get('input'))})")
    if len(items) > limit:
        parts.append(f"and {len(items) - limit} more")
    return clip("; ".join(parts), 600)


def read_capped(path: Path, cap: int, what: str) -> bytes:
    """The bytes of `path`, refused unread beyond `cap` bytes; `what` names the file in messages."""
    try:
        with path.open("rb") as handle:
            data = handle.read(cap + 1)
    except OSError as exc:
        raise UnreadableInput(f"cannot read the {what} {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) > cap:
        raise UnreadableInput(f"the {what} {str(path)!r} is larger than {cap} bytes")
    return data


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    repeated: list[str] = []
    for key, value in pairs:
        if key in result and key not in repeated:
            repeated.append(key)
        result[key] = value
    if repeated:
        raise _Repeated(tuple(repeated))
    return result


def nesting_depth(value: Any, limit: int) -> int:
    """The nesting depth of a JSON value (a scalar is 0), counted without recursion and no further than
    `limit + 1`, so that a value built deeper than any recursion limit is measured safely."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > limit:
                break
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads_strict(data: bytes | str, *, max_depth: int | None = None) -> Any:
    """One JSON value from strict UTF-8 (when `data` is bytes), with no object naming a key twice and,
    with `max_depth`, nested no deeper than that (without it, as deep as the parser recurses).
    MalformedJson (EmptyInput, DuplicateKeys) otherwise; never RecursionError or UnicodeError."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJson(f"not UTF-8 text (byte {exc.start})") from None
    if not data.strip():
        raise EmptyInput("empty input: no JSON value")
    too_deep = (
        "JSON nested too deeply" if max_depth is None else f"JSON nested deeper than {max_depth} levels"
    )
    try:
        value = json.loads(data, object_pairs_hook=_refuse_repeats)
    except RecursionError:  # the C parser counts its depth against the recursion limit and stops cleanly
        raise MalformedJson(too_deep) from None
    except _Repeated as exc:
        raise DuplicateKeys(exc.keys) from None
    except ValueError as exc:  # JSONDecodeError, integers too long to convert
        raise MalformedJson(f"not JSON: {clip(str(exc), 160)}") from None
    if max_depth is not None and nesting_depth(value, max_depth) > max_depth:
        raise MalformedJson(too_deep)
    return value
