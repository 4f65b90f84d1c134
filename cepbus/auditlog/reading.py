"""What is read of a stored log: its entries, tree and signed checkpoints (`LogReader`), whatever stores
them. The ledger service's store implements it; an export (`cepbus.auditlog.bundle.export_bundle`)
and a report from the database read through it, so they need nothing of the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from cepbus.auditlog.leaf import LedgerRecord
from cepbus.auditlog.note import Checkpoint


@dataclass(frozen=True)
class StoredEntry:
    index: int
    leaf: bytes
    record: LedgerRecord


@dataclass(frozen=True)
class StoredCheckpoint:
    checkpoint: Checkpoint
    note: str
    signed_at_ms: int


class LogReader(Protocol):
    def size(self) -> int: ...
    def root(self, size: int | None = None) -> bytes: ...
    def entries(self, start: int = 0, end: int | None = None) -> Iterator[StoredEntry]: ...
    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...
    def consistency_proof(self, old: int, new: int) -> list[bytes]: ...
    def latest_checkpoint(self) -> StoredCheckpoint | None: ...
    def checkpoint_at(self, size: int) -> StoredCheckpoint | None: ...


__all__ = ["LogReader", "StoredCheckpoint", "StoredEntry"]
