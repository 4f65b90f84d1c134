"""The ledger's route table: every regulation topic goes to one batch handler, one writer.

cep.intake.registered, cep.notice.requested, ... (LEDGER_TOPICS)  any event  LedgerWriter.append_batch
"""

from __future__ import annotations

from cepbus.contract.topics import LEDGER_TOPICS
from cepbus.runtime.service import Route, batch_route
from services.ledger.writer import LedgerWriter

#: The ledger takes bigger batches than the other services: one transaction appends the whole batch.
LEDGER_BATCH_WITHIN_MS = 50.0


def route_table(writer: LedgerWriter, batch_max: int) -> list[Route]:
    return [
        batch_route(
            "append",
            LEDGER_TOPICS,
            writer.append_batch,
            batch_max=batch_max,
            batch_within_ms=LEDGER_BATCH_WITHIN_MS,
        ),
    ]
