"""The operational side of every service, wired into its Faust app by the stream driver:
a heartbeat (liveness), readiness from partition assignment, consumer lag sampled periodically
from committed offsets and high-water marks, and the operator-silence gauges."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import faust

from cepbus.reference import load_reference
from cepbus.runtime.health import HEALTH, HealthState
from cepbus.runtime.lag import KafkaOffsets, LagGauges
from cepbus.runtime.logs import get_logger
from cepbus.runtime.metrics import SERVICE_READY
from cepbus.runtime.settings import BrokerSettings, OperationsSettings
from cepbus.runtime.silence import KnownOrganisation, OperatorSilence

log = get_logger()


def directory_silence(service: str) -> OperatorSilence:
    """Silence gauges for every organisation of the reference directory."""
    organisations = [
        KnownOrganisation(org.org_id, org.kind.value, org.region_code)
        for org in load_reference().organisations()
    ]
    return OperatorSilence(service, organisations)


def bootstrap_of(app: faust.App) -> list[str]:
    """host:port of each broker URL the app was configured with."""
    return [f"{url.host}:{url.port or 9092}" for url in app.conf.broker]


@dataclass
class Operations:
    service: str
    health: HealthState
    lag: LagGauges
    offsets: KafkaOffsets

    async def sample_lag(self) -> None:
        """Read offsets in a worker thread (kafka-python blocks) and publish the lag gauges."""
        assignment = self.health.assignment
        if not assignment:
            return
        loop = asyncio.get_running_loop()
        try:
            committed, ends = await loop.run_in_executor(None, self.offsets.read, sorted(assignment))
        except Exception as exc:  # the broker may be briefly away: say so, try again next time
            self.lag.failed()
            log.warning("lag_sample_failed", error=f"{type(exc).__name__}: {exc}")
            self.offsets.close()
            return
        self.lag.update(committed, ends, time.time())


def install_operations(
    app: faust.App, service: str, settings: OperationsSettings | None = None, health: HealthState = HEALTH
) -> Operations:
    settings = settings or OperationsSettings()
    health.stall_after_s = settings.liveness_stall_s
    operations = Operations(
        service,
        health,
        LagGauges(service),
        KafkaOffsets(bootstrap_of(app), app.conf.id, BrokerSettings().kafka_python_security()),
    )
    SERVICE_READY.labels(service).set(0)

    def set_ready() -> None:
        SERVICE_READY.labels(service).set(1 if health.ready()[0] else 0)

    async def on_assigned(sender: Any, assigned: Any = (), **kwargs: Any) -> None:
        health.assignment = frozenset((tp.topic, tp.partition) for tp in assigned)
        set_ready()
        log.info("partitions_assigned", partitions=len(health.assignment))

    async def on_revoked(sender: Any, revoked: Any = (), **kwargs: Any) -> None:
        health.assignment = None
        set_ready()

    async def worker_started() -> None:
        health.worker_started = True
        health.beat()
        set_ready()

    async def heartbeat() -> None:
        health.beat()

    async def consumer_lag() -> None:
        await operations.sample_lag()

    faust_app: Any = app  # Faust's decorators and signals are untyped
    faust_app.on_partitions_assigned.connect(on_assigned)
    faust_app.on_partitions_revoked.connect(on_revoked)
    faust_app.task(worker_started)
    faust_app.timer(1.0, name=f"{service}.heartbeat")(heartbeat)
    faust_app.timer(settings.lag_interval_s, name=f"{service}.consumer_lag")(consumer_lag)

    return operations
