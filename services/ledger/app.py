"""The ledger's Faust wiring: every regulation topic in, appended in batches, one writer."""

from __future__ import annotations

import asyncio
import time

import faust

from cepbus.logs import get_logger
from cepbus.metrics import PROCESSING_ERRORS
from cepbus.settings import BrokerSettings, LedgerSettings
from cepbus.streaming import Incoming, Outgoing, ServiceRuntime, make_app
from cepbus.topics import LEDGER_CHECKPOINTS, LEDGER_TOPICS
from services.ledger.publication import CheckpointPublication, checkpoint_event
from services.ledger.record import NewRecord
from services.ledger.signing import CheckpointPolicy, load_signer
from services.ledger.store import open_store
from services.ledger.writer import LedgerWriter

SERVICE = "ledger"
log = get_logger()


def build_app(settings: LedgerSettings | None = None, broker: BrokerSettings | None = None) -> faust.App:
    settings = settings or LedgerSettings()
    app = make_app(settings, broker or BrokerSettings())
    runtime = ServiceRuntime(SERVICE, settings.group_id, app)
    store = open_store(settings.database_url)
    writer = LedgerWriter(store, runtime)
    signer = load_signer(settings)
    latest = store.latest_checkpoint()
    policy = CheckpointPolicy(settings.checkpoint_every_entries, settings.checkpoint_every_s,
                              latest.checkpoint.size if latest else 0, time.monotonic())  # fmt: skip

    publication = CheckpointPublication()

    async def checkpoint_if_due() -> None:
        """Sign every N entries or T seconds; a refusal (inconsistent tree) is logged loudly, never signed.
        Then publish the latest stored checkpoint if it has not gone out yet."""
        size = store.size()
        if policy.due(size, time.monotonic()):
            try:
                made = store.checkpoint(signer)
            except Exception as exc:
                PROCESSING_ERRORS.labels(SERVICE, "checkpoint_refused").inc()
                log.error("ledger_checkpoint_failed", error=f"{type(exc).__name__}: {exc}")
                return
            policy.signed(made.checkpoint.size if made else size, time.monotonic())
            if made:
                log.info("ledger_checkpoint_signed", tree_size=made.checkpoint.size)
        pending = publication.pending(store.latest_checkpoint())
        if pending is None:
            return
        try:
            await runtime.send(
                [Outgoing(LEDGER_CHECKPOINTS.name, checkpoint_event(pending, settings.service_org_id))]
            )
        except Exception as exc:  # retried at the next tick: the checkpoint is stored, only its copy waits
            PROCESSING_ERRORS.labels(SERVICE, "checkpoint_publish_failed").inc()
            log.error("ledger_checkpoint_publish_failed", error=f"{type(exc).__name__}: {exc}")
            return
        publication.sent(pending)
        log.info("ledger_checkpoint_published", tree_size=pending.checkpoint.size)

    topic = app.topic(
        *(spec.name for spec in LEDGER_TOPICS),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def append_until_stored(records: list[NewRecord]) -> None:
        """A store that fails (database down) holds the stream back; it never drops the batch,
        since Faust acks the batch's offsets once this returns."""
        delay = 0.1
        while True:
            try:
                writer.append(records)
                return
            except Exception as exc:
                PROCESSING_ERRORS.labels(SERVICE, "store_unavailable").inc()
                log.error("ledger_append_failed", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @app.agent(topic, name="ledger.append")
    async def append(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(settings.batch_max, within=0.05):
            batch = [
                Incoming(
                    e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value
                )
                for e in events
            ]
            records, letters = writer.prepare(batch)
            await append_until_stored(records)
            await runtime.send(letters)
            await checkpoint_if_due()

    @app.timer(interval=settings.checkpoint_every_s)
    async def checkpoint_timer() -> None:
        await checkpoint_if_due()

    return app
