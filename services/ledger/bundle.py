"""Export bundles, and their offline verification: no database, no broker, only this file and a key.

A bundle is one JSON object:

* ``format``: ``cep-bus-ledger-bundle/1``;
* ``checkpoint``: the signed note (C2SP tlog-checkpoint) the entries are checked against;
* ``verifier_key``: the signed-note verifier key ``name+hash+base64key`` (an auditor should pin the key
  published out of band with ``--key`` rather than trust this copy);
* ``period``: ``{"from_ms", "to_ms"}`` (null for open ends), the period the report covers;
* ``entries``: for every index 0..size-1, ``{"index", "leaf_b64"}``; entries that occurred in the period
  also carry ``content``, the readable fields of the leaf (event id and type, times, pseudonym, facts),
  which the verifier checks against the leaf and the audit report reads.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from services.ledger import merkle
from services.ledger.note import NoteError, Verifier, open_checkpoint
from services.ledger.record import LedgerRecord, LedgerRecordError
from services.ledger.store import LedgerStore, StoredCheckpoint

FORMAT = "cep-bus-ledger-bundle/1"


class BundleError(ValueError):
    """The bundle does not verify; the message names what failed."""


def _in_period(occurred_ms: int, from_ms: int | None, to_ms: int | None) -> bool:
    return (from_ms is None or occurred_ms >= from_ms) and (to_ms is None or occurred_ms < to_ms)


def export_bundle(
    store: LedgerStore,
    checkpoint: StoredCheckpoint,
    verifier: Verifier,
    *,
    from_ms: int | None = None,
    to_ms: int | None = None,
) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for entry in store.entries(0, checkpoint.checkpoint.size):
        item: dict[str, Any] = {"index": entry.index, "leaf_b64": base64.b64encode(entry.leaf).decode()}
        if _in_period(entry.record.occurred_at_ms, from_ms, to_ms):
            item["content"] = entry.record.content()
        entries.append(item)
    return {
        "format": FORMAT,
        "checkpoint": checkpoint.note,
        "verifier_key": str(verifier),
        "period": {"from_ms": from_ms, "to_ms": to_ms},
        "entries": entries,
    }


@dataclass(frozen=True)
class VerifiedBundle:
    size: int
    root: bytes
    origin: str
    records: list[LedgerRecord]  # every leaf, decoded
    period: tuple[int | None, int | None]
    key_pinned: bool

    def records_in_period(self) -> Iterator[LedgerRecord]:
        start, end = self.period
        return (r for r in self.records if _in_period(r.occurred_at_ms, start, end))


def verify_bundle(document: Any, pinned_key: str | None = None) -> VerifiedBundle:
    """Check the signature, recompute the root from the leaves, check each entry's content against its
    leaf; raise BundleError naming the first failure."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleError(f"not a {FORMAT} document")
    try:
        bundled = Verifier.parse(str(document["verifier_key"]))
        verifier = Verifier.parse(pinned_key) if pinned_key else bundled
    except (KeyError, NoteError) as exc:
        raise BundleError(f"verifier key: {exc}") from exc
    if pinned_key and bundled != verifier:
        raise BundleError("the bundle's verifier key is not the pinned key")
    try:
        checkpoint = open_checkpoint(str(document.get("checkpoint", "")), verifier)
    except NoteError as exc:
        raise BundleError(f"checkpoint signature: {exc}") from exc
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise BundleError("entries: missing")
    if len(entries) != checkpoint.size:
        raise BundleError(f"entries: {len(entries)} in the bundle, the checkpoint signs {checkpoint.size}")
    tree = merkle.CompactRange()
    records: list[LedgerRecord] = []
    for position, item in enumerate(entries):
        if not isinstance(item, dict) or item.get("index") != position:
            raise BundleError(f"entry {position}: index missing or out of order")
        try:
            leaf = base64.b64decode(str(item["leaf_b64"]), validate=True)
            record = LedgerRecord.decode(leaf)
        except (KeyError, binascii.Error, ValueError, LedgerRecordError) as exc:
            raise BundleError(f"entry {position}: leaf unreadable ({exc})") from exc
        if record.index != position:
            raise BundleError(f"entry {position}: the leaf says index {record.index}")
        if "content" in item and item["content"] != record.content():
            raise BundleError(f"entry {position}: content does not match its leaf")
        tree.append(merkle.leaf_hash(leaf))
        records.append(record)
    if tree.root() != checkpoint.root:
        raise BundleError(
            f"root: the {checkpoint.size} leaves give {tree.root().hex()}, "
            f"the checkpoint signs {checkpoint.root.hex()}"
        )
    period = document.get("period") or {}
    return VerifiedBundle(
        size=checkpoint.size,
        root=checkpoint.root,
        origin=checkpoint.origin,
        records=records,
        period=(period.get("from_ms"), period.get("to_ms")),
        key_pinned=pinned_key is not None,
    )
