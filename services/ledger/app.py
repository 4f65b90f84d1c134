"""The ledger's wiring: every regulation topic in, appended in batches by one writer, checkpoints
signed and published by a timer; one `ServiceDefinition` (`python -m services.ledger`)."""

from __future__ import annotations

import time

from cepbus.contract.topics import LEDGER_TOPICS, ProducerKind
from cepbus.reference import load_reference
from cepbus.reference.directory import directory_trust_problems, load_directory
from cepbus.reference.producers import ProducerCatalog
from cepbus.runtime.identity import service_identity
from cepbus.runtime.service import ServiceDefinition, Timer
from cepbus.trust.modes import enforce
from cepbus.trust.settings import TrustSettings
from services.ledger.checkpointing import Checkpointing
from services.ledger.directory_log import record_directory
from services.ledger.routes import route_table
from services.ledger.settings import LedgerSettings
from services.ledger.signing import CheckpointPolicy, load_signer, signing_key_trust_problems
from services.ledger.store import SqlLedgerStore
from services.ledger.writer import LedgerWriter

SERVICE = "ledger"
#: How often the ledger checks whether a checkpoint is due or waits to be published.
CHECKPOINT_TICK_S = 1.0


def build_service(settings: LedgerSettings | None = None) -> ServiceDefinition:
    settings = settings or LedgerSettings()
    trust = TrustSettings()
    directory, reference = load_directory(), load_reference()
    identity = service_identity(SERVICE, settings, directory, reference, ProducerKind.LEDGER)
    problems = [
        *signing_key_trust_problems(settings),
        *directory_trust_problems(directory, trust),
        *identity.problems,
    ]
    enforce(problems, trust)  # in production, before a store is opened or a key generated
    store = SqlLedgerStore(settings.database_url)
    record_directory(store, directory)  # never an older directory; each version into the log
    latest = store.latest_checkpoint()
    policy = CheckpointPolicy(
        settings.checkpoint_every_entries,
        settings.checkpoint_every_s,
        latest.checkpoint.size if latest else 0,
        time.monotonic(),
    )
    signer = load_signer(settings, allow_generate=not trust.production)
    checkpoints = Checkpointing(store, signer, policy, settings.service_org_id)
    producers = ProducerCatalog.build(
        reference,
        directory,
        {
            settings.router_org_id: ProducerKind.ROUTER,
            settings.notifier_org_id: ProducerKind.NOTIFIER,
            settings.service_org_id: ProducerKind.LEDGER,
        },
    )
    writer = LedgerWriter(store, producers, {spec.name: spec for spec in LEDGER_TOPICS}, checkpoints)
    tick_s = min(CHECKPOINT_TICK_S, settings.checkpoint_every_s)
    return ServiceDefinition(
        SERVICE,
        settings,
        route_table(writer, settings.batch_max),
        timers=[Timer("checkpoints", tick_s, checkpoints.tick, checkpoints.sent)],
        on_stop=[store.close],
        trust_problems=problems,
        signer=identity.signer,
        authorship=identity.authorship,
    )
