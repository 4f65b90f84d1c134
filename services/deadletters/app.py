"""The dead-letter service's wiring: `cep.deadletter` in, kept in its own archive, nothing derived; one
`ServiceDefinition` (`python -m services.deadletters`).

A service of its own rather than a route of the ledger's: the dead letters are no regulation events,
their archive is an operator's working list (listed, replayed, erased), and the ledger's store stays
the Merkle tree alone."""

from __future__ import annotations

import time

from cepbus.runtime.service import ServiceDefinition
from services.deadletters.keeper import DeadLetterKeeper
from services.deadletters.routes import route_table
from services.deadletters.settings import DeadLetterSettings
from services.deadletters.store import DeadLetterStore

SERVICE = "deadletters"


def build_service(settings: DeadLetterSettings | None = None) -> ServiceDefinition:
    settings = settings or DeadLetterSettings()
    store = DeadLetterStore(settings.database_url)
    keeper = DeadLetterKeeper(store, lambda: time.time_ns() // 1_000_000)
    return ServiceDefinition(SERVICE, settings, route_table(keeper), on_stop=[store.close])
