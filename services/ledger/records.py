"""What the ledger service appends: one event as received, with the facts it keeps in clear."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from cepbus.auditlog.leaf import StatementProof


@dataclass(frozen=True)
class NewRecord:
    """One event to append; `payload` is the event exactly as received (sealed in the leaf, so the ledger
    proves the bytes), `facts` what the leaf keeps in clear (`services.ledger.facts`), computed by the
    writer from the decoded event: the store persists them as given."""

    event_id: str
    event_type: str
    topic: str
    occurred_at_ms: int
    person_pseudonym: str | None
    payload: bytes
    facts: Mapping[str, str] = field(default_factory=dict)
    content_digest: str | None = None  # what tells a redelivery from a collision; default: the bytes'
    statement: StatementProof | None = None  # its author's signature, as the bus verified it
    public: bool = False  # a public document (a directory version): its payload is kept in clear

    def digest(self) -> str:
        return self.content_digest or hashlib.sha256(self.payload).hexdigest()


__all__ = ["NewRecord"]
