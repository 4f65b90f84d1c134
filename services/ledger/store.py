"""Append-only storage of the ledger's Merkle tree, on SQLite (one host) or PostgreSQL (shared, durable).

Tables: `ledger_leaves` (one row per entry: the leaf bytes plus indexed columns copied from them),
`ledger_nodes` (every perfect subtree hash, level 0 = leaf hashes, so a proof is one O(log n) read),
`ledger_checkpoints` (signed C2SP checkpoints) and `ledger_person_keys` (the AES keys that seal personal
data; the only table rows are ever deleted from, by erasure). Appending an entry, its nodes, its dedupe key
(the UNIQUE event id) and a new person key happens in one transaction under the appenders' lock, so a
crash loses or duplicates nothing and two writers never fork the tree.

One class for both backends (`SqlLedgerStore`, opened as every store is: `cepbus.runtime.sqldb.SqlStore`),
with each dialect's DDL and write lock. The store persists what it is given: the writer computes each
record's clear facts from the decoded event, and personal data is sealed with the shared per-person
primitive (`cepbus.runtime.vault`). Queries use `?` placeholders, translated for psycopg. Triggers make
the database refuse UPDATE and DELETE on the three append-only tables, so tampering needs an admin who
first drops them, and `verify()` then names the first bad index.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from os import PathLike
from typing import Protocol

from cepbus.auditlog import merkle
from cepbus.auditlog.leaf import (
    ERASURE_EVENT_TYPE,
    LedgerRecord,
    LedgerRecordError,
    SealedPayload,
    leaf_encoder,
)
from cepbus.auditlog.note import Checkpoint, NoteError, Signer, Verifier, open_checkpoint, time_extension
from cepbus.auditlog.reading import LogReader, StoredCheckpoint, StoredEntry
from cepbus.runtime.directory_history import directory_history_personal_data, directory_history_schema
from cepbus.runtime.sqldb import Dialect, ErasureCount, PersonalData, Row, SqlStore, StoreOptions
from cepbus.runtime.vault import PersonKey, PersonKeys, sealer, unseal
from services.ledger.records import NewRecord

LEAVES, NODES, CHECKPOINTS, KEYS = "ledger_leaves", "ledger_nodes", "ledger_checkpoints", "ledger_person_keys"
DIGESTS = "ledger_event_digests"  # event id -> content digest: tells a redelivery from a collision
APPEND_ONLY_TABLES = (LEAVES, NODES, CHECKPOINTS)
DEFAULT_PAGE_SIZE = 1000
_IN_CHUNK = 500  # parameters per IN (...) list: far below SQLite's and PostgreSQL's limits
PROGRESS_EVERY = 1000  # leaves between two calls of a verification's progress hook
_ERASURE_NAMESPACE = uuid.UUID("8f6f4c1e-2b1a-4f7e-9d53-6a0c9e1d2b44")
_LEAF_COLUMNS = ("idx", "event_id", "event_type", "occurred_at_ms", "person_pseudonym", "leaf")
_LEAF_SELECT = ", ".join(_LEAF_COLUMNS)
_NODE_COLUMNS = ("level", "idx", "hash")
_DIGEST_COLUMNS = ("event_id", "digest")


class ErasedError(LookupError):
    """The person's key was destroyed: their sealed fields can no longer be read."""


@dataclass(frozen=True)
class AppendOutcome:
    appended: int
    duplicates: int
    collisions: list[NewRecord]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a full check; `reason` explains what is wrong at `first_bad_index`."""

    ok: bool
    entries_checked: int
    root: bytes
    first_bad_index: int | None
    reason: str | None


class LedgerStore(LogReader, Protocol):
    """What the ledger service's writer, checkpointing and commands need beyond reading the log."""

    def append_checked(self, records: Sequence[NewRecord]) -> AppendOutcome: ...
    def known_event_ids(self, event_ids: Iterable[str]) -> set[str]: ...
    def index_of(self, event_id: str) -> int | None: ...
    def checkpoint(self, signer: Signer) -> StoredCheckpoint | None: ...
    def erase(self, person_pseudonym: str) -> int: ...
    def open_payload(self, index: int) -> bytes: ...
    def verify(
        self, verifier: Verifier | None = None, progress: Callable[[int], None] | None = None
    ) -> VerifyResult: ...
    def close(self) -> None: ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqlLedgerStore(SqlStore):
    """The ledger's tree on SQLite (one file in WAL mode; appenders in several processes serialise on
    `BEGIN IMMEDIATE`) or PostgreSQL (appenders serialise on `LOCK TABLE ... IN SHARE ROW EXCLUSIVE
    MODE`: it conflicts with itself and with every write, but not with readers, so `verify()` and proofs
    keep running during appends). `synchronous=FULL` on SQLite: an acked append survives power loss."""

    store_name = "ledger"

    def __init__(
        self,
        url: str | PathLike[str],
        *,
        clock: Callable[[], int] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        busy_timeout_s: float = 30.0,
        synchronous: str = "FULL",
    ) -> None:
        if page_size < 1:  # before opening: a bad argument creates no file and no tables
            raise ValueError("page_size must be >= 1")
        self._clock = clock or _now_ms
        self._page_size = page_size
        options = StoreOptions(
            busy_timeout_s=busy_timeout_s,
            sqlite_pragmas=(f"synchronous={synchronous}",),
            postgres_write_lock=f"LOCK TABLE {LEAVES} IN SHARE ROW EXCLUSIVE MODE",
            schema_lock_key=_PG_SCHEMA_LOCK_KEY,
        )
        super().__init__(str(url), options)
        # the one sealing primitive of every store (cepbus.runtime.vault); 32-hex key ids, as leaves name them
        self._keys = PersonKeys(self._db, "ledger", key_id_hex=32, clock=self._clock)

    @classmethod
    def schema(cls, dialect: Dialect) -> list[str]:
        history = directory_history_schema("ledger", dialect)
        if dialect == "postgresql":
            return [*_PG_SCHEMA, *history]
        return [statement for statement in _SQLITE_SCHEMA.split(";\n") if statement.strip()] + history

    # -- database primitives (the benchmark and the tests use them too) ----------------------------

    def _write_transaction(self) -> AbstractContextManager[None]:
        """Begin, hold the lock that serialises appenders across processes, commit or roll back."""
        return self._db.transaction()

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self._db.query(sql, params)

    def _insert_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._db.executemany(sql, rows)

    def _insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """INSERT the rows in the current transaction (`Database.insert_rows`: COPY on PostgreSQL)."""
        self._db.insert_rows(table, columns, rows)

    # -- appending ----------------------------------------------------------------------------------

    def append(self, records: Sequence[NewRecord]) -> int:
        """Append new events in one transaction; already stored or repeated event ids are skipped."""
        return self.append_checked(records).appended

    def append_checked(self, records: Sequence[NewRecord]) -> AppendOutcome:
        """Append new events in one transaction. An event id already stored (or repeated in the batch)
        with the same content hash is a duplicate, skipped; with another content hash it is a
        collision: not appended, returned, so that no event can be made a "duplicate" of junk sent
        under its id before it (the caller dead-letters and counts collisions)."""
        for record in records:
            if record.payload and not record.person_pseudonym and not record.public:
                raise ValueError(
                    f"{record.event_id}: a payload needs a person pseudonym (the ledger stores none in clear)"
                )
        unique: dict[str, NewRecord] = {}
        collisions: list[NewRecord] = []
        duplicates = 0
        for record in records:
            first = unique.setdefault(record.event_id, record)
            if first is not record:
                if first.digest() == record.digest():
                    duplicates += 1
                else:
                    collisions.append(record)
        if not unique:
            return AppendOutcome(0, duplicates, collisions)
        with self._write_transaction():
            # Read the size only under the appenders' lock, else two writers would both extend it: a fork.
            stored = self.known_event_ids(unique)
            digests = self._digests(stored)
            fresh = []
            for event_id, record in unique.items():
                if event_id not in stored:
                    fresh.append(record)
                elif digests.get(event_id, record.digest()) == record.digest():
                    duplicates += 1  # a ledger written before digests were kept: taken as the same
                else:
                    collisions.append(record)
            appended = self._append_locked(fresh)
        return AppendOutcome(appended, duplicates, collisions)

    def _digests(self, event_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(event_ids)
        found: dict[str, str] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = self._query(f"SELECT event_id, digest FROM {DIGESTS} WHERE event_id IN ({marks})", chunk)
            found.update((event_id, digest) for event_id, digest in rows)
        return found

    def _append_locked(self, fresh: Sequence[NewRecord]) -> int:
        """Append `fresh` (new event ids only) under the appenders' lock, inside the caller's transaction.

        Everything is computed in memory first, in one pass: the tree's right edge (its peaks, read once)
        gives every new node, each person's key (read or created once) seals all of their events, the
        leaf schema is looked up once. Then one insert per table (`_insert_rows`). The records come with
        their facts: the store persists what it is given.
        """
        if not fresh:
            return 0
        size = self.size()
        peaks = merkle.peak_ids(size)
        stored_peaks = self._nodes_or_fail(peaks)
        tree = merkle.CompactRange(size, [stored_peaks[node] for node in peaks])
        recorded_at_ms = self._clock()
        keys = self._keys.find(r.person_pseudonym for r in fresh if r.person_pseudonym and r.payload)
        sealers = {person: (key.key_id, sealer(key.key)) for person, key in keys.items()}
        new_keys: dict[str, PersonKey] = {}
        encode = leaf_encoder()
        digests: list[tuple[object, ...]] = []
        leaves: list[tuple[object, ...]] = []
        nodes: list[tuple[object, ...]] = []
        for record in fresh:
            sealed = None
            person = record.person_pseudonym
            if record.payload and person:
                if person not in sealers:
                    key = new_keys[person] = self._keys.new_key()
                    sealers[person] = (key.key_id, sealer(key.key))
                key_id, seal_one = sealers[person]
                sealed = SealedPayload(key_id, *seal_one(record.event_id, record.payload))
            leaf = encode(
                LedgerRecord(
                    index=tree.size,
                    event_id=record.event_id,
                    event_type=record.event_type,
                    topic=record.topic,
                    occurred_at_ms=record.occurred_at_ms,
                    recorded_at_ms=recorded_at_ms,
                    person_pseudonym=None,  # never in clear: the sealed payload holds it, the key id links it
                    facts=record.facts,
                    sealed=sealed,
                    clear_payload=record.payload if record.public else None,
                    statement=record.statement,
                )
            )
            leaves.append((tree.size, record.event_id, record.event_type, record.occurred_at_ms, None, leaf))
            digests.append((record.event_id, record.digest()))
            nodes.extend((level, idx, h) for (level, idx), h in tree.append(merkle.leaf_hash(leaf)))
        self._keys.store(new_keys)
        self._insert_rows(LEAVES, _LEAF_COLUMNS, leaves)
        self._insert_rows(NODES, _NODE_COLUMNS, nodes)
        self._insert_rows(DIGESTS, _DIGEST_COLUMNS, digests)
        return len(leaves)

    def known_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Which of these event ids the ledger holds, in a few chunked queries (for pollers)."""
        event_ids = list(event_ids)
        found: set[str] = set()
        for start in range(0, len(event_ids), _IN_CHUNK):
            chunk = event_ids[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = self._query(f"SELECT event_id FROM {LEAVES} WHERE event_id IN ({marks})", chunk)
            found.update(row[0] for row in rows)
        return found

    # -- erasure ------------------------------------------------------------------------------------

    @classmethod
    def personal_data(cls) -> Sequence[PersonalData]:
        """The ledger's erasure is its own (`erase_person`): its three tree tables are append-only."""
        return (
            PersonalData(
                LEAVES,
                "each event as received (profile, notice text, rules, referral), sealed under the person's "
                "key, with the key's id; beside it only the clear facts of services/ledger/facts.py, which "
                "tell no person's situation from another's (the pseudonym column stays empty)",
                "destroy_key",
            ),
            PersonalData(NODES, "Merkle tree hashes", "nothing_personal"),
            PersonalData(CHECKPOINTS, "signed tree heads (size, root, time)", "nothing_personal"),
            PersonalData(
                DIGESTS,
                "the SHA-256 of each event's bytes (redelivery or collision): whoever knows the rest of "
                "an event could match it against a dictionary of notices; the erased person's are deleted",
                "delete_rows",
            ),
            PersonalData(
                KEYS, "each person's pseudonym and AES-256 key", "destroy_key", where="pseudonym = ?"
            ),
            directory_history_personal_data("ledger"),
        )

    def erase_person(self, pseudonym: str) -> ErasureCount:
        """`erase`, as every store's erasure is called; nothing to erase is no error here."""
        try:
            return self._erase(pseudonym)
        except KeyError:
            return ErasureCount(self.store_name, {})

    def erase(self, person_pseudonym: str) -> int:
        """Destroy the person's key and record the erasure as a ledger entry; returns its index.

        The leaves keep their ciphertext, so every proof still holds; without the key it is noise. The
        erasure entry names only the destroyed key's id, never the pseudonym. The content digests of the
        person's events go (a dictionary of notices could match them). A later event about the same
        pseudonym gets a fresh key.
        """
        index = self._erase(person_pseudonym).erasure_entry
        assert index is not None  # _erase records one or raises
        return index

    def _sealed_under(self, key_id: str, start: int, end: int) -> set[str]:
        """The event ids of the leaves in [start, end) sealed under `key_id` (a scan: erasure is rare)."""
        marker = key_id.encode()
        found: set[str] = set()
        for row in self._raw_rows(start, end):
            leaf = bytes(row[5])
            if marker in leaf:  # a cheap filter before decoding
                sealed = LedgerRecord.decode(leaf).sealed
                if sealed is not None and sealed.key_id == key_id:
                    found.add(str(row[1]))
        return found

    def _erase(self, person_pseudonym: str) -> ErasureCount:
        known = self._query(f"SELECT key_id FROM {KEYS} WHERE pseudonym = ?", (person_pseudonym,))
        scanned = self.size()
        # outside the appenders' lock: the scan reads the whole log; what is appended meanwhile is read below
        sealed = self._sealed_under(str(known[0][0]), 0, scanned) if known else set()
        with self._write_transaction():
            key_id = self._keys.destroy(person_pseudonym)
            if key_id is None:
                raise KeyError(f"no live key for person {person_pseudonym!r} (unknown, or already erased)")
            if not known or key_id != known[0][0]:  # erased and re-keyed meanwhile: scan again, locked
                sealed, scanned = set(), 0
            sealed |= self._sealed_under(key_id, scanned, self.size())
            ids, digests = sorted(sealed), 0
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                where = f"WHERE event_id IN ({', '.join('?' * len(chunk))})"
                digests += int(self._query(f"SELECT COUNT(*) FROM {DIGESTS} {where}", chunk)[0][0])
                self._db.execute(f"DELETE FROM {DIGESTS} {where}", chunk)
            now = self._clock()
            erasure = NewRecord(
                event_id=str(uuid.uuid5(_ERASURE_NAMESPACE, key_id)),  # unlinkable to the pseudonym
                event_type=ERASURE_EVENT_TYPE,
                topic="ledger",
                occurred_at_ms=now,
                person_pseudonym=person_pseudonym,
                payload=b"",
                facts={"erased_key_id": key_id},
            )
            index = self.size()
            self._append_locked([erasure])
        self._db.purge_deleted()  # the key's bytes must not survive in the WAL or in free pages
        return ErasureCount(self.store_name, {KEYS: 1, DIGESTS: digests}, 1, index)

    def open_payload(self, index: int) -> bytes:
        """The event as received, decrypted; ErasedError once the person's key is gone."""
        entry = next(self.entries(index, index + 1), None)
        if entry is None:
            raise IndexError(f"no entry at index {index}")
        record = entry.record
        if record.sealed is None:
            return record.clear_payload or b""
        key = self._keys.by_key_id(record.sealed.key_id)
        if key is None:
            raise ErasedError(f"entry {index}: the key of {record.person_pseudonym!r} was destroyed (erased)")
        return unseal(key, record.event_id, record.sealed.nonce, record.sealed.ciphertext)

    # -- reading ------------------------------------------------------------------------------------

    def count(self) -> int:
        return self.size()

    def size(self) -> int:
        rows = self._query(f"SELECT MAX(idx) FROM {LEAVES}")
        return 0 if rows[0][0] is None else int(rows[0][0]) + 1

    def count_by_type(self) -> dict[str, int]:
        rows = self._query(
            f"SELECT event_type, COUNT(*) FROM {LEAVES} GROUP BY event_type ORDER BY event_type"
        )
        return {event_type: int(n) for event_type, n in rows}

    def contains(self, event_id: str) -> bool:
        return self.index_of(event_id) is not None

    def index_of(self, event_id: str) -> int | None:
        rows = self._query(f"SELECT idx FROM {LEAVES} WHERE event_id = ?", (event_id,))
        return int(rows[0][0]) if rows else None

    def _raw_rows(self, start: int, end: int | None) -> Iterator[Row]:
        next_idx = start
        while end is None or next_idx < end:
            limit = self._page_size if end is None else min(self._page_size, end - next_idx)
            rows = self._query(
                f"SELECT {_LEAF_SELECT} FROM {LEAVES} WHERE idx >= ? ORDER BY idx LIMIT ?", (next_idx, limit)
            )
            yield from rows
            if len(rows) < limit:
                return
            next_idx = int(rows[-1][0]) + 1

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[StoredEntry]:
        """Entries in index order, fetched a page at a time (keyset paging: each page is one query)."""
        for row in self._raw_rows(start, end):
            leaf = bytes(row[5])
            yield StoredEntry(int(row[0]), leaf, LedgerRecord.decode(leaf))

    def read_nodes(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        """Stored perfect-subtree hashes, in one query (a proof needs O(log n) of them)."""
        found: dict[merkle.NodeId, bytes] = {}
        for start in range(0, len(ids), _IN_CHUNK // 2):
            chunk = ids[start : start + _IN_CHUNK // 2]
            where = " OR ".join("(level = ? AND idx = ?)" for _ in chunk)
            params = [value for node in chunk for value in node]
            for level, idx, h in self._query(f"SELECT level, idx, hash FROM {NODES} WHERE {where}", params):
                found[(int(level), int(idx))] = bytes(h)
        return found

    def _nodes_or_fail(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        found = self.read_nodes(ids) if ids else {}
        if len(found) != len(set(ids)):
            raise LookupError(f"tree nodes missing from the store: {sorted(set(ids) - found.keys())[:5]}")
        return found

    def root(self, size: int | None = None) -> bytes:
        return merkle.root_at(self.size() if size is None else size, self.read_nodes)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, size, self.read_nodes)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(old, new, self.read_nodes)

    # -- checkpoints --------------------------------------------------------------------------------

    def _checkpoints(
        self, where: str = "", params: Sequence[object] = (), limit: str = ""
    ) -> list[StoredCheckpoint]:
        rows = self._query(
            f"SELECT size, root, note, signed_at_ms FROM {CHECKPOINTS} {where} ORDER BY size {limit}", params
        )
        return [
            StoredCheckpoint(Checkpoint.parse(note.split("\n\n")[0] + "\n"), note, int(t))
            for _, _, note, t in rows
        ]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = self._query(f"SELECT MAX(size) FROM {CHECKPOINTS}")
        return None if rows[0][0] is None else self.checkpoint_at(int(rows[0][0]))

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        found = self._checkpoints("WHERE size = ?", (size,))
        return found[0] if found else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        return self._checkpoints()

    def checkpoint(self, signer: Signer) -> StoredCheckpoint | None:
        """Sign and store a checkpoint of the current tree, after proving it consistent with the last one.

        Returns None when the tree has not grown since the last checkpoint (nothing new to sign). Raises
        merkle.ProofError, and signs nothing, if the current tree does not extend the last signed one:
        the ledger never signs two inconsistent checkpoints.
        """
        with self._write_transaction():
            size = self.size()
            previous = self.latest_checkpoint()
            if size == 0 or (previous is not None and previous.checkpoint.size >= size):
                return None
            root = self.root(size)
            if previous is not None:
                try:
                    open_checkpoint(previous.note, signer.verifier())
                except NoteError as exc:
                    raise merkle.ProofError(f"the last stored checkpoint is not ours: {exc}") from exc
                old = previous.checkpoint
                merkle.verify_consistency(
                    old.size, size, old.root, root, self.consistency_proof(old.size, size)
                )
            # the signing time goes inside the signature (to the second), so that a verifier tells an
            # old checkpoint from a fresh one; the stored time is the same second
            signed_at = self._clock() // 1000 * 1000
            checkpoint = Checkpoint(signer.name, size, root, (time_extension(signed_at),))
            note = signer.sign(checkpoint.text())
            self._insert_many(
                f"INSERT INTO {CHECKPOINTS} (size, root, note, signed_at_ms) VALUES (?, ?, ?, ?)",
                [(size, root, note, signed_at)],
            )
            return StoredCheckpoint(checkpoint, note, signed_at)

    # -- verification -------------------------------------------------------------------------------

    def verify(
        self, verifier: Verifier | None = None, progress: Callable[[int], None] | None = None
    ) -> VerifyResult:
        """Recompute everything from the leaves: leaf content vs columns, every stored node, every
        checkpoint's root (and signature, given the verifier key); stops at the first bad index.
        `progress(leaves checked)`, if given, is called every `PROGRESS_EVERY` leaves and at the end."""
        tree = merkle.CompactRange()
        checkpoints = {c.checkpoint.size: c for c in self._checkpoints()}

        def bad(index: int, reason: str) -> VerifyResult:
            return VerifyResult(False, tree.size, tree.root(), index, reason)

        expected: dict[merkle.NodeId, bytes] = {}
        node_count = 0
        for row in self._raw_rows(0, None):
            index, event_id, event_type, occurred, person, leaf = row
            leaf = bytes(leaf)
            if int(index) != tree.size:
                return bad(tree.size, f"entry missing: the next one stored has index {index}")
            try:
                record = LedgerRecord.decode(leaf)
            except LedgerRecordError as exc:
                return bad(tree.size, str(exc))
            columns = (
                record.index,
                record.event_id,
                record.event_type,
                record.occurred_at_ms,
                record.person_pseudonym,
            )
            if columns != (int(index), event_id, event_type, int(occurred), person):
                return bad(tree.size, "the indexed columns do not match the leaf's content")
            expected.update(tree.append(merkle.leaf_hash(leaf)))
            if progress is not None and tree.size % PROGRESS_EVERY == 0:
                progress(tree.size)
            if tree.size in checkpoints and checkpoints[tree.size].checkpoint.root != tree.root():
                return bad(tree.size - 1, f"the checkpoint of size {tree.size} signs another root")
            if len(expected) >= 4 * self._page_size:
                node_count += len(expected)
                problem = self._compare_nodes(expected)
                if problem:
                    return bad(problem[0], problem[1])
                expected = {}
        if progress is not None:
            progress(tree.size)
        node_count += len(expected)
        problem = self._compare_nodes(expected)
        if problem:
            return bad(problem[0], problem[1])
        stored_nodes = int(self._query(f"SELECT COUNT(*) FROM {NODES}")[0][0])
        if stored_nodes != node_count:
            return bad(tree.size, f"{stored_nodes} tree nodes stored, {node_count} expected")
        for size, stored in checkpoints.items():
            if size > tree.size:
                return bad(tree.size, f"a checkpoint of size {size} exists but only {tree.size} entries")
            if verifier is not None:
                try:
                    open_checkpoint(stored.note, verifier)
                except NoteError as exc:
                    return bad(size - 1, f"checkpoint of size {size}: {exc}")
        return VerifyResult(True, tree.size, tree.root(), None, None)

    def _compare_nodes(self, expected: dict[merkle.NodeId, bytes]) -> tuple[int, str] | None:
        by_level: dict[int, list[int]] = {}
        for level, idx in expected:
            by_level.setdefault(level, []).append(idx)
        for level, indexes in sorted(by_level.items()):
            rows = self._query(
                f"SELECT idx, hash FROM {NODES} WHERE level = ? AND idx BETWEEN ? AND ?",
                (level, min(indexes), max(indexes)),
            )
            stored = {int(idx): bytes(h) for idx, h in rows}
            for idx in sorted(indexes):
                if stored.get(idx) != expected[(level, idx)]:
                    return (
                        idx << level,
                        f"stored tree node (level {level}, index {idx}) does not match the leaves",
                    )
        return None


def _sqlite_guard(table: str, key: str) -> str:
    return f"""
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table}
WHEN EXISTS (SELECT 1 FROM {table} WHERE {key})
BEGIN SELECT RAISE(ABORT, '{table} is append-only: INSERT over an existing row refused'); END;
"""


_SQLITE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {LEAVES} (
    idx INTEGER PRIMARY KEY CHECK (idx >= 0),
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    occurred_at_ms INTEGER NOT NULL,
    person_pseudonym TEXT,
    leaf BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS {NODES} (
    level INTEGER NOT NULL CHECK (level >= 0),
    idx INTEGER NOT NULL CHECK (idx >= 0),
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
    size INTEGER PRIMARY KEY CHECK (size > 0),
    root BLOB NOT NULL CHECK (length(root) = 32),
    note TEXT NOT NULL,
    signed_at_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS {KEYS} (
    pseudonym TEXT PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    aes_key BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS {DIGESTS} (
    event_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {LEAVES}_person ON {LEAVES} (person_pseudonym);
{_sqlite_guard(LEAVES, "idx = NEW.idx OR event_id = NEW.event_id")}
{_sqlite_guard(NODES, "level = NEW.level AND idx = NEW.idx")}
{_sqlite_guard(CHECKPOINTS, "size = NEW.size")}
"""


_PG_SCHEMA_LOCK_KEY = 0x6365_7062_7573_4C47  # "cepbusLG": serialises concurrent first-time DDL
_PG_SCHEMA = [
    f"""
    CREATE TABLE IF NOT EXISTS {LEAVES} (
        idx BIGINT NOT NULL CHECK (idx >= 0) PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        occurred_at_ms BIGINT NOT NULL,
        person_pseudonym TEXT,
        leaf BYTEA NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {NODES} (
        level SMALLINT NOT NULL CHECK (level >= 0),
        idx BIGINT NOT NULL CHECK (idx >= 0),
        hash BYTEA NOT NULL CHECK (octet_length(hash) = 32),
        PRIMARY KEY (level, idx)
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
        size BIGINT PRIMARY KEY CHECK (size > 0),
        root BYTEA NOT NULL CHECK (octet_length(root) = 32),
        note TEXT NOT NULL,
        signed_at_ms BIGINT NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {KEYS} (
        pseudonym TEXT PRIMARY KEY,
        key_id TEXT NOT NULL UNIQUE,
        aes_key BYTEA NOT NULL,
        created_at_ms BIGINT NOT NULL
    )
    """,
    f"CREATE TABLE IF NOT EXISTS {DIGESTS} (event_id TEXT PRIMARY KEY, digest TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {LEAVES}_person ON {LEAVES} (person_pseudonym)",
    """
    CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    *(
        statement
        for table in APPEND_ONLY_TABLES
        for statement in (
            f"""CREATE OR REPLACE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()""",
            f"""CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()""",
        )
    ),
]


__all__ = [
    "APPEND_ONLY_TABLES",
    "CHECKPOINTS",
    "KEYS",
    "LEAVES",
    "NODES",
    "AppendOutcome",
    "ErasedError",
    "LedgerStore",
    "SqlLedgerStore",
    "StoredCheckpoint",
    "StoredEntry",
    "VerifyResult",
]
