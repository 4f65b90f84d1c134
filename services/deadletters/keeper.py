"""The dead-letter service's one handler: each batch of `cep.deadletter` into the archive.

Batch by batch, in one store transaction, so a redelivered dead letter is kept once (by event id) and
an unavailable database makes the driver retry the batch without acknowledging it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cepbus.contract.models import DeadLetter
from cepbus.runtime.messages import Outgoing, Received, Refusal
from services.deadletters.store import DeadLetterStore


@dataclass
class DeadLetterKeeper:
    """The batch handler for `cep.deadletter`: keeps every dead letter, derives nothing."""

    store: DeadLetterStore
    clock_ms: Callable[[], int]

    def keep_batch(self, batch: Sequence[Received]) -> list[Outgoing | Refusal]:
        letters = [item.event for item in batch if isinstance(item.event, DeadLetter)]
        self.store.record(letters, self.clock_ms())
        return []


__all__ = ["DeadLetterKeeper"]
