"""Hash-chain maths of the regulation ledger: pure functions, no I/O, so an auditor can check them alone.

Hash layout (version 1)
-----------------------
``entry_hash = SHA-256(message)`` where ``message`` is the concatenation, in this order, of:

====  ==================  ============================================================================
 #    field               encoding
====  ==================  ============================================================================
 1    domain tag          ``u32`` length (17) + ASCII ``cep-bus-ledger-v1``
 2    prev_hash           ``u32`` length (32) + the 32 bytes (``GENESIS_HASH``, 32 zero bytes, for seq 0)
 3    seq                 ``i64``
 4    event_id            ``u32`` length + UTF-8
 5    event_type          ``u32`` length + UTF-8
 6    topic               ``u32`` length + UTF-8
 7    occurred_at_ms      ``i64``
 8    person_pseudonym    ``u8`` 0 when null (nothing follows) or 1 followed by ``u32`` length + UTF-8
 9    payload             ``u32`` length + the bytes as received (Avro single-object frame)
 10   recorded_at_ms      ``i64``
====  ==================  ============================================================================

``u32``/``i64`` are big-endian, ``i64`` two's complement; every length counts bytes. Each variable field
carries its length, so no two different records share a message (``("ab", "c")`` vs ``("a", "bc")``),
and the tag keeps these hashes from colliding with any other use of SHA-256 over the same bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS_HASH = bytes(32)
HASH_LEN = 32
DOMAIN_TAG = b"cep-bus-ledger-v1"

_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")


@dataclass(frozen=True)
class NewRecord:
    """One event to append; `payload` is the event exactly as received, so the ledger proves the bytes."""

    event_id: str
    event_type: str
    topic: str
    occurred_at_ms: int
    person_pseudonym: str | None
    payload: bytes


@dataclass(frozen=True)
class LedgerEntry:
    """A stored record plus its place in the chain."""

    seq: int
    event_id: str
    event_type: str
    topic: str
    occurred_at_ms: int
    person_pseudonym: str | None
    payload: bytes
    recorded_at_ms: int
    prev_hash: bytes
    entry_hash: bytes

    @property
    def record(self) -> NewRecord:
        return NewRecord(
            event_id=self.event_id,
            event_type=self.event_type,
            topic=self.topic,
            occurred_at_ms=self.occurred_at_ms,
            person_pseudonym=self.person_pseudonym,
            payload=self.payload,
        )


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain check; `reason` explains what is wrong at `first_bad_seq`.

    `entries_checked` counts the entries found valid (all of them when `ok`); `head_hash` is the hash of the
    last valid entry (`GENESIS_HASH` if none), i.e. what a checkpoint of the good prefix would publish.
    """

    ok: bool
    entries_checked: int
    head_hash: bytes
    first_bad_seq: int | None
    reason: str | None


def _bytes_field(value: bytes) -> bytes:
    return _U32.pack(len(value)) + value


def _text_field(name: str, value: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, got {type(value).__name__}")
    return _bytes_field(value.encode("utf-8"))


def _int_field(name: str, value: int) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be int, got {type(value).__name__}")
    try:
        return _I64.pack(value)
    except struct.error:
        raise ValueError(f"{name}={value} does not fit in a signed 64-bit integer") from None


def entry_hash(prev_hash: bytes, seq: int, record: NewRecord, recorded_at_ms: int) -> bytes:
    """SHA-256 of the version-1 message described in the module docstring."""
    if not isinstance(prev_hash, bytes) or len(prev_hash) != HASH_LEN:
        raise ValueError(f"prev_hash must be {HASH_LEN} bytes")
    if isinstance(seq, int) and seq < 0:
        raise ValueError(f"seq must be >= 0, got {seq}")
    if not isinstance(record.payload, bytes):
        raise TypeError(f"payload must be bytes, got {type(record.payload).__name__}")
    pseudonym = record.person_pseudonym
    message = b"".join(
        (
            _bytes_field(DOMAIN_TAG),
            _bytes_field(prev_hash),
            _int_field("seq", seq),
            _text_field("event_id", record.event_id),
            _text_field("event_type", record.event_type),
            _text_field("topic", record.topic),
            _int_field("occurred_at_ms", record.occurred_at_ms),
            b"\x00" if pseudonym is None else b"\x01" + _text_field("person_pseudonym", pseudonym),
            _bytes_field(record.payload),
            _int_field("recorded_at_ms", recorded_at_ms),
        )
    )
    return hashlib.sha256(message).digest()


def chain_entry(prev_hash: bytes, seq: int, record: NewRecord, recorded_at_ms: int) -> LedgerEntry:
    """The entry that extends a chain whose head is (`seq`, `prev_hash`) with `record`."""
    return LedgerEntry(
        seq=seq,
        event_id=record.event_id,
        event_type=record.event_type,
        topic=record.topic,
        occurred_at_ms=record.occurred_at_ms,
        person_pseudonym=record.person_pseudonym,
        payload=record.payload,
        recorded_at_ms=recorded_at_ms,
        prev_hash=prev_hash,
        entry_hash=entry_hash(prev_hash, seq, record, recorded_at_ms),
    )


def verify_chain(entries: Iterable[LedgerEntry]) -> VerifyResult:
    """Recompute the chain from genesis, consuming `entries` lazily and stopping at the first bad entry.

    Seq must run 0, 1, 2... with no gap, so a deleted or reordered entry shows up as the first missing seq.
    What this cannot see is the loss of the newest entries: compare `head_hash` with a published checkpoint
    for that.
    """
    expected_seq = 0
    prev = GENESIS_HASH

    def bad(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, expected_seq, prev, seq, reason)

    for entry in entries:
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                return bad(expected_seq, f"entry missing: the next one stored has seq {entry.seq}")
            return bad(expected_seq, f"seq out of order: found {entry.seq} where {expected_seq} belongs")
        if entry.prev_hash != prev:
            return bad(entry.seq, "prev_hash does not match the hash of the entry before")
        try:
            computed = entry_hash(prev, entry.seq, entry.record, entry.recorded_at_ms)
        except (TypeError, ValueError) as exc:
            return bad(entry.seq, f"unhashable entry ({exc})")
        if entry.entry_hash != computed:
            return bad(entry.seq, "entry_hash does not match its content")
        prev = computed
        expected_seq += 1
    return VerifyResult(True, expected_seq, prev, None, None)
