"""Publishing signed checkpoints on `cep.ledger.checkpoints`, so that auditors and partners collect them
as they are signed (a checkpoint seen once binds the operator: any later one must be consistent with it).

Pure: which stored checkpoint still has to go out, and the event that carries it. At least once: the
latest stored checkpoint not yet sent goes out at the next tick, including one signed by the CLI (`cep-bus
ledger checkpoint`, `export`) and one whose send failed, and after a restart the latest goes out again
under the same derived event id, which consumers dedupe.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from cepbus.contract.models import CheckpointPublished, derived_event_id, new_envelope
from services.ledger.store import StoredCheckpoint


def checkpoint_event(stored: StoredCheckpoint, producer_org_id: str) -> CheckpointPublished:
    """The event for a stored checkpoint; its id derives from origin, size and root, so republishing the
    same checkpoint gives the same event."""
    checkpoint = stored.checkpoint
    root_b64 = base64.b64encode(checkpoint.root).decode()
    event_id = derived_event_id(f"{checkpoint.origin}/{checkpoint.size}/{root_b64}", "checkpoint-published")
    envelope = new_envelope(
        CheckpointPublished,
        producer_org_id=producer_org_id,
        event_id=event_id,
        correlation_id=str(event_id),
        occurred_at=datetime.fromtimestamp(stored.signed_at_ms / 1000, UTC),
    )
    return CheckpointPublished(
        envelope=envelope,
        origin=checkpoint.origin,
        tree_size=checkpoint.size,
        root_hash_b64=root_b64,
        signed_note=stored.note,
    )


@dataclass
class CheckpointPublication:
    """Remembers the largest tree size sent; in memory on purpose (a restart resends the latest once)."""

    published_size: int = 0

    def pending(self, latest: StoredCheckpoint | None) -> StoredCheckpoint | None:
        if latest is None or latest.checkpoint.size <= self.published_size:
            return None
        return latest

    def sent(self, stored: StoredCheckpoint) -> None:
        self.published_size = max(self.published_size, stored.checkpoint.size)
