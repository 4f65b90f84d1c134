"""What the audit report may count only where the persons' keys are (`cepbus.auditlog.report.SealedFacts`):
a decline's reason and a referral's recipient kind stay sealed in the leaves (each says something of the
person: `services/ledger/facts.py`), so the ledger's operator opens them, one leaf at a time, to count
refusals by reason and by recipient kind (issue #24). An erased person's leaves no longer open: counted
as unreadable, never guessed."""

from __future__ import annotations

from collections.abc import Iterable

from cepbus.auditlog.reading import StoredEntry
from cepbus.contract import codec
from cepbus.contract.models import ReferralRequested, ReferralStatusChanged
from services.ledger.store import ErasedError, SqlLedgerStore


class LedgerSealedFacts:
    def __init__(self, store: SqlLedgerStore, entries: Iterable[StoredEntry]) -> None:
        self._store = store
        self._updates: dict[str, int] = {}  # statement digest (hex) of a status update -> its leaf
        self._referrals: dict[str, int] = {}  # referral id -> the leaf of its request
        for entry in entries:
            record = entry.record
            if record.event_type == ReferralStatusChanged.avro_name:
                digest = record.facts.get("statement_digest") or (
                    record.statement.digest.hex() if record.statement is not None else None
                )
                if digest:
                    self._updates[digest] = entry.index
            elif record.event_type == ReferralRequested.avro_name and record.facts.get("referral_id"):
                self._referrals.setdefault(record.facts["referral_id"], entry.index)

    def _open(self, index: int | None) -> object | None:
        if index is None:
            return None
        try:
            return codec.decode(self._store.open_payload(index))
        except (ErasedError, codec.DecodeError):
            return None

    def refusal_reason(self, update_digest: str) -> str | None:
        update = self._open(self._updates.get(update_digest))
        return update.reason_code if isinstance(update, ReferralStatusChanged) else None

    def recipient_kind(self, referral_id: str) -> str | None:
        referral = self._open(self._referrals.get(referral_id))
        return referral.recipient_kind.value if isinstance(referral, ReferralRequested) else None


__all__ = ["LedgerSealedFacts"]
