"""The operational side of every service, whichever driver runs it: liveness (a heartbeat), readiness
(partition assignment), consumer lag sampled from committed offsets and high-water marks, and the
operator-silence gauges. No stream framework here: a driver calls these methods from its own group
callbacks, loop and timers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from cepbus.reference import load_reference
from cepbus.runtime.client_config import kafka_python_security
from cepbus.runtime.health import HEALTH, HealthState
from cepbus.runtime.instruments import NO_INSTRUMENTS, Instruments
from cepbus.runtime.lag import KafkaOffsets, LagGauges
from cepbus.runtime.logs import get_logger
from cepbus.runtime.metrics import SERVICE_READY
from cepbus.runtime.settings import BrokerSettings, OperationsSettings
from cepbus.runtime.silence import KnownOrganisation, OperatorSilence

log = get_logger()

Partition = tuple[str, int]


def directory_silence(service: str) -> OperatorSilence:
    """Silence gauges for every organisation of the reference directory."""
    organisations = [
        KnownOrganisation(org.org_id, org.kind.value, org.region_code)
        for org in load_reference().organisations()
    ]
    return OperatorSilence(service, organisations)


class Operations:
    """One service's health and lag. `offsets` reads the group's committed offsets (kafka-python,
    blocking: call `sample_lag` from a thread or an executor)."""

    def __init__(
        self,
        service: str,
        group_id: str,
        broker: BrokerSettings,
        *,
        settings: OperationsSettings | None = None,
        health: HealthState = HEALTH,
        instruments: Instruments = NO_INSTRUMENTS,
        offsets: KafkaOffsets | None = None,
    ) -> None:
        self.service = service
        self.group_id = group_id
        self.settings = settings or OperationsSettings()
        self.health = health
        self.health.stall_after_s = self.settings.liveness_stall_s
        self.instruments = instruments
        self.principal = f"cepbus-{service}"
        self.lag = LagGauges(service)
        self.offsets = offsets or KafkaOffsets(broker.bootstrap_list, group_id, kafka_python_security(broker))
        SERVICE_READY.labels(service).set(0)

    @property
    def lag_interval_s(self) -> float:
        return self.settings.lag_interval_s

    def _set_ready(self) -> None:
        SERVICE_READY.labels(self.service).set(1 if self.health.ready()[0] else 0)

    def assigned(self, partitions: Iterable[Partition]) -> None:
        self.health.assignment = frozenset(self.health.assignment or ()) | frozenset(partitions)
        self._set_ready()
        log.info("partitions_assigned", partitions=len(self.health.assignment))

    def revoked(self, partitions: Iterable[Partition]) -> None:
        """Partitions taken away; with none left the service is not ready until the next assignment."""
        left = frozenset(self.health.assignment or ()) - frozenset(partitions)
        self.health.assignment = left or None
        self._set_ready()

    def worker_started(self) -> None:
        self.health.worker_started = True
        self.health.beat()
        self._set_ready()

    def beat(self) -> None:
        self.health.beat()

    def subscribed(self, topics: Iterable[str]) -> None:
        """The requests a subscription makes: Read of each topic and of the group."""
        record = self.instruments.requests.record
        for topic in topics:
            record(self.principal, "Read", "topic", topic)
        record(self.principal, "Read", "group", self.group_id)

    def sample_lag(self) -> None:
        """Read offsets (blocking) and publish the lag gauges; a failure is counted and logged, and the
        next sample tries again with a new connection."""
        assignment = self.health.assignment
        if not assignment:
            return
        record = self.instruments.requests.record
        for topic in {t for t, _ in assignment}:  # the offsets read: Describe of the topics and the group
            record(self.principal, "Describe", "topic", topic)
        record(self.principal, "Describe", "group", self.group_id)
        try:
            committed, ends = self.offsets.read(sorted(assignment))
        except Exception as exc:  # the broker may be briefly away: say so, try again next time
            self.lag.failed()
            log.warning("lag_sample_failed", error=f"{type(exc).__name__}: {exc}")
            self.offsets.close()
            return
        self.lag.update(committed, ends, time.time())

    def close(self) -> None:
        self.offsets.close()


__all__ = ["Operations", "directory_silence"]
