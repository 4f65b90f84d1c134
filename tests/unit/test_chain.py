"""The ledger hash chain: the published byte layout, and that verify_chain catches each kind of tampering."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.chain import (
    GENESIS_HASH,
    LedgerEntry,
    NewRecord,
    chain_entry,
    entry_hash,
    verify_chain,
)

RECORD = NewRecord(
    event_id="3f1c1d2e-0000-4000-8000-000000000001",
    event_type="IntakeRegistered",
    topic="cep.regulation.intake",
    occurred_at_ms=1_700_000_000_000,
    person_pseudonym="psn-42",
    payload=b"\xc3\x01payload",
)


def auditor_hash(prev_hash: bytes, seq: int, record: NewRecord, recorded_at_ms: int) -> bytes:
    """Re-implementation from the module docstring alone, as an outside auditor would write it."""

    def blob(value: bytes) -> bytes:
        return struct.pack(">I", len(value)) + value

    pseudonym = record.person_pseudonym
    message = (
        blob(b"cep-bus-ledger-v1")
        + blob(prev_hash)
        + struct.pack(">q", seq)
        + blob(record.event_id.encode())
        + blob(record.event_type.encode())
        + blob(record.topic.encode())
        + struct.pack(">q", record.occurred_at_ms)
        + (b"\x00" if pseudonym is None else b"\x01" + blob(pseudonym.encode()))
        + blob(record.payload)
        + struct.pack(">q", recorded_at_ms)
    )
    return hashlib.sha256(message).digest()


def record(i: int) -> NewRecord:
    return NewRecord(
        event_id=f"event-{i}",
        event_type=("IntakeRegistered", "NoticeIssued", "ChoiceRecorded")[i % 3],
        topic="cep.regulation",
        occurred_at_ms=1_700_000_000_000 + i,
        person_pseudonym=None if i % 4 == 0 else f"psn-{i % 7}",
        payload=b"\xc3\x01" + i.to_bytes(4, "big"),
    )


def build_chain(n: int) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    prev = GENESIS_HASH
    for seq in range(n):
        entry = chain_entry(prev, seq, record(seq), 1_800_000_000_000 + seq)
        entries.append(entry)
        prev = entry.entry_hash
    return entries


# -- entry_hash --------------------------------------------------------------------------------------


def test_known_answer_vectors_freeze_the_layout() -> None:
    # Changing these means every published ledger stops verifying: bump DOMAIN_TAG instead.
    assert (
        entry_hash(GENESIS_HASH, 0, RECORD, 1_700_000_000_123).hex()
        == "72d67bbd1f2b859bb3a2be5f4ffff4d7f93555baa5b21f2fa12699c13811590d"
    )
    other = NewRecord("e", "T", "t", -5, None, b"")
    assert (
        entry_hash(b"\x11" * 32, 7, other, 0).hex()
        == "fc8bae142de6f3d2682c2c66c1ee2334367c3aa3e8557f569d2c67f74f976109"
    )


@settings(max_examples=200, deadline=None)
@given(
    prev=st.binary(min_size=32, max_size=32),
    seq=st.integers(0, 2**63 - 1),
    event_id=st.text(),
    event_type=st.text(),
    topic=st.text(),
    occurred=st.integers(-(2**63), 2**63 - 1),
    pseudonym=st.none() | st.text(),
    payload=st.binary(),
    recorded=st.integers(-(2**63), 2**63 - 1),
)
def test_documented_layout_matches_an_independent_implementation(
    prev: bytes,
    seq: int,
    event_id: str,
    event_type: str,
    topic: str,
    occurred: int,
    pseudonym: str | None,
    payload: bytes,
    recorded: int,
) -> None:
    rec = NewRecord(event_id, event_type, topic, occurred, pseudonym, payload)
    try:
        expected = auditor_hash(prev, seq, rec, recorded)
    except UnicodeEncodeError:  # lone surrogates are not UTF-8: both sides must refuse
        with pytest.raises(UnicodeEncodeError):
            entry_hash(prev, seq, rec, recorded)
        return
    assert entry_hash(prev, seq, rec, recorded) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"event_id": "3f1c1d2e-0000-4000-8000-000000000002"},
        {"event_type": "NoticeIssued"},
        {"topic": "cep.regulation.other"},
        {"occurred_at_ms": 1_700_000_000_001},
        {"person_pseudonym": "psn-43"},
        {"person_pseudonym": None},
        {"payload": b"\xc3\x01payloaD"},
    ],
)
def test_every_record_field_is_covered(change: dict[str, object]) -> None:
    changed = dataclasses.replace(RECORD, **change)  # type: ignore[arg-type]
    assert entry_hash(GENESIS_HASH, 0, changed, 1) != entry_hash(GENESIS_HASH, 0, RECORD, 1)


def test_prev_hash_seq_and_recorded_at_are_covered() -> None:
    base = entry_hash(GENESIS_HASH, 0, RECORD, 1)
    assert entry_hash(b"\x01" + bytes(31), 0, RECORD, 1) != base
    assert entry_hash(GENESIS_HASH, 1, RECORD, 1) != base
    assert entry_hash(GENESIS_HASH, 0, RECORD, 2) != base


def test_field_boundaries_and_null_are_unambiguous() -> None:
    a = NewRecord("ab", "c", "t", 0, None, b"")
    b = NewRecord("a", "bc", "t", 0, None, b"")
    assert entry_hash(GENESIS_HASH, 0, a, 0) != entry_hash(GENESIS_HASH, 0, b, 0)
    empty = dataclasses.replace(a, person_pseudonym="")
    assert entry_hash(GENESIS_HASH, 0, a, 0) != entry_hash(GENESIS_HASH, 0, empty, 0)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="prev_hash"):
        entry_hash(b"short", 0, RECORD, 0)
    with pytest.raises(ValueError, match="seq"):
        entry_hash(GENESIS_HASH, -1, RECORD, 0)
    with pytest.raises(ValueError, match="64-bit"):
        entry_hash(GENESIS_HASH, 2**63, RECORD, 0)
    with pytest.raises(TypeError, match="payload"):
        entry_hash(GENESIS_HASH, 0, dataclasses.replace(RECORD, payload="text"), 0)  # type: ignore[arg-type]


# -- verify_chain ------------------------------------------------------------------------------------


def test_empty_chain_is_valid() -> None:
    assert verify_chain([]) == verify_chain(iter(()))
    result = verify_chain([])
    assert (result.ok, result.entries_checked, result.head_hash) == (True, 0, GENESIS_HASH)


def test_valid_chain() -> None:
    entries = build_chain(50)
    result = verify_chain(entries)
    assert result.ok
    assert result.entries_checked == 50
    assert result.head_hash == entries[-1].entry_hash
    assert (result.first_bad_seq, result.reason) == (None, None)


def test_entry_record_round_trips() -> None:
    entry = chain_entry(GENESIS_HASH, 0, RECORD, 5)
    assert entry.record == RECORD
    assert entry.prev_hash == GENESIS_HASH
    assert entry.entry_hash == entry_hash(GENESIS_HASH, 0, RECORD, 5)


@pytest.mark.parametrize(
    "change",
    [
        {"event_id": "forged"},
        {"event_type": "Forged"},
        {"topic": "forged"},
        {"occurred_at_ms": 0},
        {"person_pseudonym": "someone-else"},
        {"payload": b"forged"},
        {"recorded_at_ms": 0},
    ],
)
def test_changed_field_is_caught_at_its_seq(change: dict[str, object]) -> None:
    entries = build_chain(10)
    entries[6] = dataclasses.replace(entries[6], **change)  # type: ignore[arg-type]
    result = verify_chain(entries)
    assert not result.ok
    assert result.first_bad_seq == 6
    assert result.entries_checked == 6
    assert result.head_hash == entries[5].entry_hash
    assert result.reason is not None and "entry_hash" in result.reason


def test_changed_stored_hash_is_caught() -> None:
    entries = build_chain(10)
    entries[3] = dataclasses.replace(entries[3], entry_hash=bytes(32))
    result = verify_chain(entries)
    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_rewritten_entry_with_recomputed_hash_breaks_the_next_link() -> None:
    """An attacker who recomputes the hash of the entry they altered is caught by the next prev link."""
    entries = build_chain(10)
    forged = chain_entry(entries[3].prev_hash, 3, dataclasses.replace(record(3), payload=b"forged"), 0)
    entries[3] = forged
    result = verify_chain(entries)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert result.reason is not None and "prev_hash" in result.reason


def test_broken_prev_link_is_caught() -> None:
    entries = build_chain(10)
    entries[5] = chain_entry(b"\x42" * 32, 5, record(5), entries[5].recorded_at_ms)
    result = verify_chain(entries)
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert result.reason is not None and "prev_hash" in result.reason


def test_deleted_entry_names_the_missing_seq() -> None:
    entries = build_chain(10)
    del entries[4]
    result = verify_chain(entries)
    assert (result.ok, result.first_bad_seq, result.entries_checked) == (False, 4, 4)
    assert result.reason is not None and "missing" in result.reason


def test_deleted_first_entry_is_caught() -> None:
    result = verify_chain(build_chain(3)[1:])
    assert (result.ok, result.first_bad_seq) == (False, 0)


def test_reordered_entries_are_caught() -> None:
    entries = build_chain(10)
    entries[2], entries[3] = entries[3], entries[2]
    result = verify_chain(entries)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_repeated_entry_is_caught() -> None:
    entries = build_chain(5)
    entries.insert(3, entries[2])
    result = verify_chain(entries)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.reason is not None and "out of order" in result.reason


def test_renumbered_seq_is_caught() -> None:
    entries = build_chain(5)
    entries[0] = dataclasses.replace(entries[0], seq=1)
    assert verify_chain(entries).first_bad_seq == 0


def test_verify_streams_and_stops_at_the_first_bad_entry() -> None:
    """An endless iterator proves nothing is collected up front and nothing is read past the failure."""

    def endless() -> Iterator[LedgerEntry]:
        prev = GENESIS_HASH
        for seq in itertools.count():
            entry = chain_entry(prev, seq, record(seq), 0)
            yield dataclasses.replace(entry, payload=b"tampered") if seq == 1000 else entry
            prev = entry.entry_hash

    result = verify_chain(endless())
    assert (result.ok, result.entries_checked, result.first_bad_seq) == (False, 1000, 1000)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 30), data=st.data())
def test_any_single_byte_flip_in_any_payload_is_caught(n: int, data: st.DataObject) -> None:
    entries = build_chain(n)
    victim = data.draw(st.integers(0, n - 1))
    payload = bytearray(entries[victim].payload)
    position = data.draw(st.integers(0, len(payload) - 1))
    payload[position] ^= data.draw(st.integers(1, 255))
    entries[victim] = dataclasses.replace(entries[victim], payload=bytes(payload))
    result = verify_chain(entries)
    assert (result.ok, result.first_bad_seq) == (False, victim)
