"""The dead-letter service's route table: the one topic it reads, to one batch handler.

cep.deadletter  DeadLetter  DeadLetterKeeper.keep_batch
"""

from __future__ import annotations

from cepbus.contract.models import DeadLetter
from cepbus.contract.topics import DEAD_LETTER
from cepbus.runtime.service import Route, batch_route
from services.deadletters.keeper import DeadLetterKeeper


def route_table(keeper: DeadLetterKeeper) -> list[Route]:
    return [batch_route("dead_letters", [DEAD_LETTER], keeper.keep_batch, accepts=DeadLetter)]
