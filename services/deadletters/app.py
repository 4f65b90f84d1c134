"""The dead-letter service's wiring: `cep.deadletter` in, kept in its own archive, nothing derived; one
`ServiceDefinition` (`python -m services.deadletters`).

A service of its own rather than a route of the ledger's: the dead letters are no regulation events,
their archive is an operator's working list (listed, replayed, erased), and the ledger's store stays
the Merkle tree alone."""

from __future__ import annotations

import time

from cepbus.contract.topics import ProducerKind
from cepbus.reference import load_reference
from cepbus.reference.directory import directory_trust_problems, load_directory
from cepbus.runtime.directory_history import DirectoryHistory
from cepbus.runtime.identity import service_identity
from cepbus.runtime.service import ServiceDefinition
from cepbus.trust.modes import enforce
from services.deadletters.keeper import DeadLetterKeeper
from services.deadletters.routes import route_table
from services.deadletters.settings import DeadLetterSettings
from services.deadletters.store import DeadLetterStore

SERVICE = "deadletters"


def build_service(settings: DeadLetterSettings | None = None) -> ServiceDefinition:
    settings = settings or DeadLetterSettings()
    directory = load_directory()
    identity = service_identity(SERVICE, settings, directory, load_reference(), ProducerKind.DEADLETTERS)
    problems = [*directory_trust_problems(directory), *identity.problems]
    enforce(problems)  # in production, before the store is opened
    store = DeadLetterStore(settings.database_url)
    DirectoryHistory(store.database, SERVICE).admit(directory)  # never an older directory
    keeper = DeadLetterKeeper(store, lambda: time.time_ns() // 1_000_000)
    return ServiceDefinition(
        SERVICE,
        settings,
        route_table(keeper),
        on_stop=[store.close],
        trust_problems=problems,
        signer=identity.signer,
        authorship=identity.authorship,
    )
