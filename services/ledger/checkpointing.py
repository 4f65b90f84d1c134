"""When the ledger signs a checkpoint, and the publication of each signed one on its topic."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cepbus.auditlog.note import Signer
from cepbus.contract.topics import LEDGER_CHECKPOINTS
from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import Outgoing
from cepbus.runtime.metrics import PROCESSING_ERRORS
from services.ledger.metrics import (
    LEDGER_CHECKPOINT_SIGNED_AT,
    LEDGER_CHECKPOINTS_REFUSED,
    LEDGER_UNSIGNED_ENTRIES,
)
from services.ledger.publication import CheckpointPublication, checkpoint_event
from services.ledger.signing import CheckpointPolicy
from services.ledger.store import LedgerStore, StoredCheckpoint

SERVICE = "ledger"
log = get_logger()


@dataclass
class Checkpointing:
    store: LedgerStore
    signer: Signer
    policy: CheckpointPolicy
    producer_org_id: str
    publication: CheckpointPublication = field(default_factory=CheckpointPublication)
    _offered: StoredCheckpoint | None = None  # what the last tick handed out to be published

    def sign_if_due(self) -> None:
        """Sign every N entries or T seconds; a refusal (inconsistent tree) is logged loudly, never signed."""
        size = self.store.size()
        latest = self.store.latest_checkpoint()
        signed_size = latest.checkpoint.size if latest else 0
        LEDGER_UNSIGNED_ENTRIES.set(size - signed_size)
        if latest is not None:
            LEDGER_CHECKPOINT_SIGNED_AT.set(latest.signed_at_ms / 1000)
        if not self.policy.due(size, time.monotonic()):
            return
        try:
            made = self.store.checkpoint(self.signer)
        except Exception as exc:  # alerts: CepbusLedgerCheckpointRefused, CepbusLedgerSigningStopped
            PROCESSING_ERRORS.labels(SERVICE, "checkpoint_refused").inc()
            LEDGER_CHECKPOINTS_REFUSED.inc()
            log.error("ledger_checkpoint_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self.policy.signed(made.checkpoint.size if made else size, time.monotonic())
        if made:
            LEDGER_UNSIGNED_ENTRIES.set(size - made.checkpoint.size)
            LEDGER_CHECKPOINT_SIGNED_AT.set(made.signed_at_ms / 1000)
            log.info("ledger_checkpoint_signed", tree_size=made.checkpoint.size)

    def tick(self) -> list[Outgoing]:
        """The timer: sign if due, then the latest stored checkpoint if it has not gone out yet."""
        self.sign_if_due()
        pending = self.publication.pending(self.store.latest_checkpoint())
        self._offered = pending
        if pending is None:
            return []
        return [Outgoing(LEDGER_CHECKPOINTS.name, checkpoint_event(pending, self.producer_org_id))]

    def sent(self, outputs: Sequence[Outgoing]) -> None:
        """The broker acknowledged what `tick` handed out."""
        if self._offered is not None and outputs:
            self.publication.sent(self._offered)
            log.info("ledger_checkpoint_published", tree_size=self._offered.checkpoint.size)
