"""Export bundles, and their offline verification: no database, no broker, only this file and a key.

A bundle is one JSON object:

* ``format``: ``cep-bus-ledger-bundle/2`` (``/1``, from before the period was signed, still verifies);
* ``checkpoint``: the signed note (C2SP tlog-checkpoint) the entries are checked against;
* ``verifier_key``: the signed-note verifier key ``name+hash+base64key``, for information only: it is
  NEVER trusted. The checkpoint must be signed by a key the auditor pins (``--key`` or ``--trust``), the
  key published out of band; a bundle anyone re-signed with their own key under the same origin fails;
* ``period``: ``{"from_ms", "to_ms"}`` (null for open ends), the instants the ledger recorded the
  entries that carry their content in; an export of whole days adds ``{"from_day", "to_day"}``
  (``YYYY-MM-DD``, inclusive): the days the report covers, cut at local midnight in each region, which
  [from_ms, to_ms) spans for every zone;
* ``period_note`` (``/2``): a C2SP signed note by the ledger's checkpoint key over the period and the
  checkpoint it was exported against (`SignedPeriod`). The period decides what a report from the bundle
  covers, so it is signed like the rest: the verifier checks the note with the pinned key and refuses a
  ``period`` that is not the one signed. A ``/1`` bundle's period is outside any signature: it verifies,
  but a report does not use its bounded period (`PeriodNotSigned`). Why refuse rather than recompute:
  nothing signed says which period the operator meant, and a report over the whole log labelled as such
  is what an unbounded ``/1`` period already gives;
* ``entries``: for every index 0..size-1, ``{"index", "leaf_b64"}``; entries the ledger recorded in the
  period (its clock, never a sender's claim) also carry ``content``, the readable fields of the leaf
  (event id and type, times, pseudonym, facts), which the verifier checks against the leaf and the audit
  report reads. The leaves also hold each directory version the ledger ran with, so the verifier checks,
  entry by entry, that the producer's key of the version in force signed each statement
  (`cepbus.auditlog.authors`).

Reading is hostile-input safe: the file is read with a size cap, decoded as strict UTF-8, parsed as JSON
with duplicate keys refused and nesting bounded, then validated field by field (`BundleDocument`, strict
types, unknown fields refused). Every failure is a `BundleError` with a one-line message naming the field;
its `exit_code` is 1 (the bundle does not verify) or 2 (`BundleUsageError`: no usable pinned key, or no
file to read; `PeriodNotSigned`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cepbus.auditlog import merkle
from cepbus.auditlog.authors import AuthorCheck, AuthorError, check_authors
from cepbus.auditlog.leaf import LedgerRecord, LedgerRecordError
from cepbus.auditlog.note import Checkpoint, NoteError, Signer, Verifier, open_checkpoint, open_note
from cepbus.auditlog.reading import LogReader, StoredCheckpoint
from cepbus.trust.keys import AuthorityKey
from cepbus.untrusted_json import (
    EmptyInput,
    MalformedJson,
    UnreadableInput,
    clip,
    loads_strict,
    one_line,
    read_capped,
    short,
)

FORMAT = "cep-bus-ledger-bundle/2"
#: The format before the period was signed: still verified, its period never used by a report.
FORMAT_V1 = "cep-bus-ledger-bundle/1"
FORMATS = (FORMAT_V1, FORMAT)
#: The first line of a period note: it can never be read as a checkpoint (whose second line is a size).
PERIOD_TAG = "cep-bus/ledger-bundle-period/v1"

#: A bundle file larger than this is refused before it is read (about a million entries fit well below).
MAX_BUNDLE_BYTES = 1 << 30
#: A trust file is a handful of key lines.
MAX_TRUST_FILE_BYTES = 1 << 20
#: A day of an export of whole days (checked as a real date when the bundle is verified).
_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: Unix ms bounds of a period end (1970-01-01 .. 9999-12-31).
MAX_MS = 253_402_300_799_999
_PROGRESS_EVERY = 1000  # entries between two calls of an export's progress hook

NO_PINNED_KEY = (
    "no pinned key: pass --key VKEY (the published verifier key, name+hash+base64) or --trust FILE "
    "(one verifier key per line); the key inside the bundle is never trusted"
)


class BundleError(ValueError):
    """The bundle does not verify (exit 1); the message names what failed."""

    exit_code: ClassVar[int] = 1


class BundleUsageError(BundleError):
    """No usable pinned key, or no bundle file to read (exit 2): nothing was verified."""

    exit_code: ClassVar[int] = 2


class PeriodNotSigned(BundleUsageError):
    """A report asked to cover a bundle's own period, which no signature covers (a ``/1`` bundle): the
    bundle verified, but its period is anyone's edit (exit 2: pass the days)."""


# --- the signed period -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedPeriod:
    """What a period note says: the period of a bundle and the checkpoint it was exported against."""

    origin: str
    size: int
    root: bytes
    from_ms: int | None
    to_ms: int | None
    days: tuple[str | None, str | None] | None

    def text(self) -> str:
        """The note's text: the tag, then one line each (``-`` for an open end); ``days`` only for an
        export of whole days."""

        def end(value: object) -> str:
            return "-" if value is None else str(value)

        lines = [
            PERIOD_TAG,
            f"origin {self.origin}",
            f"checkpoint {self.size} {base64.b64encode(self.root).decode()}",
            f"instants {end(self.from_ms)} {end(self.to_ms)}",
        ]
        if self.days is not None:
            lines.append(f"days {end(self.days[0])} {end(self.days[1])}")
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> SignedPeriod:
        """The period note's text, strictly (BundleError naming what is wrong)."""
        lines = text.split("\n")
        if lines[-1] != "" or len(lines) not in (5, 6) or lines[0] != PERIOD_TAG:
            raise BundleError("period_note: not a cep-bus period note")
        fields = [line.split(" ") for line in lines[1:-1]]
        shapes = [("origin", 2), ("checkpoint", 3), ("instants", 3), ("days", 3)]
        for parts, (name, width) in zip(fields, shapes, strict=False):
            if parts[0] != name or len(parts) != width:
                raise BundleError(f"period_note: malformed {name} line")
        try:
            root = base64.b64decode(fields[1][2], validate=True)
            size, ends = _decimal(fields[1][1]), [None if v == "-" else _decimal(v) for v in fields[2][1:]]
        except (binascii.Error, ValueError):
            raise BundleError("period_note: malformed checkpoint or instants line") from None
        days = None
        if len(fields) == 4:
            days = (_day(fields[3][1]), _day(fields[3][2]))
        return cls(fields[0][1], size, root, ends[0], ends[1], days)


def _decimal(text: str) -> int:
    if not text.isdigit() or not text.isascii() or (text != "0" and text.startswith("0")):
        raise ValueError(text)
    return int(text)


def _day(text: str) -> str | None:
    if text == "-":
        return None
    if not re.fullmatch(_DAY, text):
        raise BundleError(f"period_note: {text[:20]!r} is not a day YYYY-MM-DD")
    return text


def _in_period(recorded_ms: int, from_ms: int | None, to_ms: int | None) -> bool:
    """Whether the ledger recorded an entry in [from_ms, to_ms): its own clock, never a sender's claim."""
    return (from_ms is None or recorded_ms >= from_ms) and (to_ms is None or recorded_ms < to_ms)


def export_bundle(
    store: LogReader,
    checkpoint: StoredCheckpoint,
    key: Signer | Verifier,
    *,
    from_ms: int | None = None,
    to_ms: int | None = None,
    days: tuple[str | None, str | None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The bundle of every leaf up to `checkpoint`, with the contents of those the ledger recorded in the
    period; `progress(entries done)`, if given, is called every `_PROGRESS_EVERY` entries and at the end.

    With the ledger's signing key (`Signer`, the key that signed `checkpoint`: NoteError otherwise) the
    bundle is ``/2``, its period signed; with only a `Verifier` it is ``/1``, whose period no report uses."""
    signer = key if isinstance(key, Signer) else None
    verifier = key.verifier() if isinstance(key, Signer) else key
    if signer is not None:
        open_checkpoint(checkpoint.note, verifier)  # a period is only ever signed for our own checkpoint
    entries: list[dict[str, Any]] = []
    for entry in store.entries(0, checkpoint.checkpoint.size):
        item: dict[str, Any] = {"index": entry.index, "leaf_b64": base64.b64encode(entry.leaf).decode()}
        if _in_period(entry.record.recorded_at_ms, from_ms, to_ms):
            item["content"] = entry.record.content()
        entries.append(item)
        if progress is not None and len(entries) % _PROGRESS_EVERY == 0:
            progress(len(entries))
    if progress is not None:
        progress(len(entries))
    document: dict[str, Any] = {
        "format": FORMAT if signer is not None else FORMAT_V1,
        "checkpoint": checkpoint.note,
        "verifier_key": str(verifier),
        "period": {
            "from_ms": from_ms,
            "to_ms": to_ms,
            **({} if days is None else {"from_day": days[0], "to_day": days[1]}),
        },
    }
    if signer is not None:
        signed = checkpoint.checkpoint
        period = SignedPeriod(signed.origin, signed.size, signed.root, from_ms, to_ms, days)
        document["period_note"] = signer.sign(period.text())
    return {**document, "entries": entries}


# --- the document, field by field ------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class BundlePeriod(_Strict):
    from_ms: int | None = Field(default=None, ge=0, le=MAX_MS)
    to_ms: int | None = Field(default=None, ge=0, le=MAX_MS)
    from_day: str | None = Field(default=None, pattern=_DAY)
    to_day: str | None = Field(default=None, pattern=_DAY)

    def days(self) -> tuple[str | None, str | None] | None:
        """The local days of an export of whole days (None: a period of instants)."""
        if "from_day" not in self.model_fields_set and "to_day" not in self.model_fields_set:
            return None
        for day in (self.from_day, self.to_day):
            if day is not None:
                try:
                    date.fromisoformat(day)
                except ValueError:
                    raise BundleError(f"period: {day!r} is not a date YYYY-MM-DD") from None
        if self.from_day and self.to_day and self.from_day > self.to_day:
            raise BundleError(f"period: to_day {self.to_day} is before from_day {self.from_day}")
        return self.from_day, self.to_day


class BundleEntry(_Strict):
    index: int = Field(ge=0)
    leaf_b64: str
    content: dict[str, Any] | None = None  # absent outside the period; if present (even null), must match


class BundleDocument(_Strict):
    format: Literal["cep-bus-ledger-bundle/1", "cep-bus-ledger-bundle/2"]
    checkpoint: str = Field(min_length=1)
    verifier_key: str  # information only: never trusted
    period: BundlePeriod | None = None
    period_note: str | None = Field(default=None, min_length=1)  # /2: the period, signed
    entries: list[BundleEntry]


def describe_validation(error: ValidationError, *, limit: int = 3) -> str:
    """One line naming each failing field (at most `limit` of them), inputs shortened."""
    return one_line(error, limit=limit)


def parse_document(document: Any) -> BundleDocument:
    """The bundle's fields, checked by type; BundleError naming the first bad fields."""
    if not isinstance(document, dict):
        raise BundleError(f"not a {FORMAT} document: a JSON object is needed, got {type(document).__name__}")
    if document.get("format") not in FORMATS:
        raise BundleError(f"not a {FORMAT} document (format is {short(document.get('format'))})")
    try:
        return BundleDocument.model_validate(document)
    except ValidationError as exc:
        raise BundleError(f"malformed bundle: {describe_validation(exc)}") from None
    except RecursionError:
        raise BundleError("malformed bundle: nested too deeply") from None


# --- reading files ---------------------------------------------------------------------------------


def _read_capped(path: Path, cap: int, what: str) -> bytes:
    try:
        return read_capped(path, cap, what)
    except UnreadableInput as exc:
        raise BundleUsageError(str(exc)) from None


def parse_json(data: bytes) -> Any:
    """Strict UTF-8, JSON with no duplicate key and bounded nesting; BundleError otherwise."""
    try:
        return loads_strict(data)
    except EmptyInput:
        raise BundleError("empty file: a JSON bundle is needed") from None
    except MalformedJson as exc:
        raise BundleError(str(exc)) from None


def read_bundle(path: Path) -> Any:
    """The parsed JSON of a bundle file (not yet validated): BundleUsageError when there is no file to
    read, BundleError when its bytes are not JSON."""
    return parse_json(_read_capped(path, MAX_BUNDLE_BYTES, "bundle"))


def parse_trust_lines(text: str, source: str = "trust file") -> tuple[Verifier, ...]:
    """Verifier keys, one a line; blank lines and '#' comments (whole-line or after the key) ignored."""
    keys: list[Verifier] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        token, *rest = line.split(None, 1)
        if rest and not rest[0].startswith("#"):
            raise BundleUsageError(f"{source} line {number}: one verifier key a line, got more")
        try:
            keys.append(Verifier.parse(token))
        except NoteError as exc:
            raise BundleUsageError(f"{source} line {number}: {exc}") from None
    if not keys:
        raise BundleUsageError(f"{source} holds no verifier key")
    return tuple(keys)


def trusted_keys(key: str | None, trust: Path | None) -> tuple[Verifier, ...]:
    """The pinned keys from `--key` and/or `--trust`; BundleUsageError (exit 2) when there is none."""
    keys: list[Verifier] = []
    if key is not None:
        try:
            keys.append(Verifier.parse(key))
        except NoteError as exc:
            raise BundleUsageError(f"--key: {exc}") from None
    if trust is not None:
        data = _read_capped(trust, MAX_TRUST_FILE_BYTES, "trust file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleUsageError(f"the trust file {str(trust)!r} is not UTF-8 text") from None
        keys.extend(parse_trust_lines(text, f"trust file {str(trust)!r}"))
    if not keys:
        raise BundleUsageError(NO_PINNED_KEY)
    return tuple(keys)


# --- verification ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedBundle:
    size: int
    root: bytes
    origin: str
    records: list[LedgerRecord]  # every leaf, decoded
    period: tuple[int | None, int | None]
    verified_by: Verifier  # the pinned key whose signature verified the checkpoint
    days: tuple[str | None, str | None] | None = None  # an export of whole days: local days per region
    signed_at_ms: int | None = None  # when the log signed the checkpoint (None: a checkpoint without time)
    period_signed: bool = False  # the period is the one the ledger signed (/2); False: a /1 bundle's
    authors: AuthorCheck | None = None  # who said what: every statement checked against its directory


def _pinned(trusted: str | Verifier | Iterable[str | Verifier]) -> tuple[Verifier, ...]:
    items: Sequence[str | Verifier] = [trusted] if isinstance(trusted, str | Verifier) else list(trusted)
    keys = []
    for item in items:
        try:
            keys.append(item if isinstance(item, Verifier) else Verifier.parse(item))
        except NoteError as exc:
            raise BundleUsageError(f"pinned key: {exc}") from None
    if not keys:
        raise BundleUsageError(NO_PINNED_KEY)
    return tuple(keys)


def _signed_period(bundle: BundleDocument, checkpoint: Checkpoint, verifier: Verifier) -> bool:
    """For a ``/2`` bundle, check its period note (signed by the key that verified the checkpoint, for
    this checkpoint) and that `period` is the period signed: True; BundleError otherwise. False for a
    ``/1`` bundle, whose period nothing signs."""
    if bundle.format == FORMAT_V1:
        if bundle.period_note is not None:
            raise BundleError(f"period_note: a {FORMAT_V1} bundle carries none")
        return False
    if bundle.period_note is None or bundle.period is None:
        raise BundleError(f"period: a {FORMAT} bundle carries its period and its signed period_note")
    try:
        signed = SignedPeriod.parse(open_note(bundle.period_note, verifier))
    except NoteError as exc:
        raise BundleError(f"period_note: {exc}") from None
    if (signed.origin, signed.size, signed.root) != (checkpoint.origin, checkpoint.size, checkpoint.root):
        raise BundleError(
            f"period_note: signed for the checkpoint of size {signed.size} of {signed.origin!r}, "
            f"not for this bundle's (size {checkpoint.size})"
        )
    period = bundle.period
    if (period.from_ms, period.to_ms, period.days()) != (signed.from_ms, signed.to_ms, signed.days):
        raise BundleError(
            "period: not the period the ledger signed for this bundle "
            f"(signed: instants {signed.from_ms}..{signed.to_ms}, days {signed.days}): it was edited"
        )
    return True


def _open_with_pinned(note: str, pinned: tuple[Verifier, ...], claimed: str) -> tuple[Any, Verifier]:
    failures = []
    for verifier in pinned:
        try:
            return open_checkpoint(note, verifier), verifier
        except NoteError as exc:
            failures.append(str(exc))
    names = ", ".join(f"{v.name}+{v.key_id.hex()}" for v in pinned)
    message = f"checkpoint signature: not signed by a pinned key ({names}): {failures[0]}"
    try:
        bundled: Verifier | None = Verifier.parse(claimed)
    except NoteError:
        bundled = None
    if bundled is not None and bundled not in pinned:
        message += f"; the bundle names the key {bundled.name}+{bundled.key_id.hex()}, which is not pinned"
    raise BundleError(message)


def verify_bundle(
    document: Any,
    trusted: str | Verifier | Iterable[str | Verifier],
    *,
    directory_authority: AuthorityKey | None = None,
) -> VerifiedBundle:
    """Check the checkpoint's signature by one of the pinned keys `trusted` (never by the bundle's own
    `verifier_key`), recompute the root from the leaves, check each entry's content against its leaf and
    each statement against the directory version in force when it was recorded (`cepbus.auditlog.authors`;
    each version's signature too with `directory_authority` pinned); raise BundleError naming the first
    failure (BundleUsageError when no key is pinned)."""
    pinned = _pinned(trusted)
    bundle = parse_document(document)
    checkpoint, verifier = _open_with_pinned(bundle.checkpoint, pinned, bundle.verifier_key)
    try:
        signed_at_ms = checkpoint.signed_at_ms()
    except NoteError as exc:
        raise BundleError(f"checkpoint: {exc}") from None
    period_signed = _signed_period(bundle, checkpoint, verifier)
    entries = bundle.entries
    if len(entries) != checkpoint.size:
        raise BundleError(f"entries: {len(entries)} in the bundle, the checkpoint signs {checkpoint.size}")
    tree = merkle.CompactRange()
    records: list[LedgerRecord] = []
    for position, item in enumerate(entries):
        if item.index != position:
            raise BundleError(f"entry {position}: index {item.index} out of order")
        try:
            leaf = base64.b64decode(item.leaf_b64, validate=True)
            record = LedgerRecord.decode(leaf)
        except (binascii.Error, ValueError, LedgerRecordError) as exc:
            raise BundleError(f"entry {position}: leaf unreadable ({clip(str(exc), 120)})") from None
        if record.index != position:
            raise BundleError(f"entry {position}: the leaf says index {record.index}")
        if "content" in item.model_fields_set and item.content != record.content():
            raise BundleError(f"entry {position}: content does not match its leaf")
        tree.append(merkle.leaf_hash(leaf))
        records.append(record)
    if tree.root() != checkpoint.root:
        raise BundleError(
            f"root: the {checkpoint.size} leaves give {tree.root().hex()}, "
            f"the checkpoint signs {checkpoint.root.hex()}"
        )
    try:
        authors = check_authors(records, directory_authority)
    except AuthorError as exc:
        raise BundleError(str(exc)) from None
    period = bundle.period or BundlePeriod()
    return VerifiedBundle(
        size=checkpoint.size,
        root=checkpoint.root,
        origin=checkpoint.origin,
        records=records,
        period=(period.from_ms, period.to_ms),
        verified_by=verifier,
        days=period.days(),
        signed_at_ms=signed_at_ms,
        period_signed=period_signed,
        authors=authors,
    )
