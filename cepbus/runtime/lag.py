"""Consumer lag per partition, computed by the service itself from its group's committed offsets
and the partitions' high-water marks, in messages and in seconds.

Lag in seconds is estimated the way kafka-lag-exporter does it: the service samples each
partition's high-water mark over time; the message at the committed offset was written after the
last sample whose high-water mark was still at or below that offset, so its age is at least
`now - time of the first sample that passed it`. No record timestamps are read.

Tansu's ListOffsets "latest" returns the start of the last batch, not the end (DEVELOPERS.md): on
Tansu the high-water mark, hence the lag, is under-reported by up to one batch, and a committed
offset may even exceed it; lag is never reported below zero.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cepbus.runtime.metrics import CONSUMER_LAG_MESSAGES, CONSUMER_LAG_SECONDS, LAG_SAMPLE_ERRORS

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    messages: int
    seconds: float


@dataclass
class LagClock:
    """High-water-mark history per partition, and the lag figures derived from it. Pure."""

    history_size: int = 720  # 2 h at one sample every 10 s
    _marks: dict[TopicPartition, deque[tuple[float, int]]] = field(default_factory=dict)

    def observe(self, tp: TopicPartition, now: float, high_water: int) -> None:
        marks = self._marks.setdefault(tp, deque(maxlen=self.history_size))
        if marks and marks[-1][1] == high_water:
            return  # nothing written since: the older sample keeps the better (earlier) bound
        marks.append((now, high_water))

    def lag(self, tp: TopicPartition, committed: int, now: float) -> PartitionLag:
        marks = self._marks.get(tp)
        if not marks:
            return PartitionLag(tp[0], tp[1], 0, 0.0)
        messages = max(0, marks[-1][1] - committed)
        if messages == 0:
            return PartitionLag(tp[0], tp[1], 0, 0.0)
        # the first sample whose high-water mark had passed the committed offset
        passed_at = next((at for at, mark in marks if mark > committed), marks[-1][0])
        return PartitionLag(tp[0], tp[1], messages, max(0.0, now - passed_at))

    def forget(self, keep: Iterable[TopicPartition]) -> None:
        kept = set(keep)
        for tp in [tp for tp in self._marks if tp not in kept]:
            del self._marks[tp]


class KafkaOffsets:
    """Committed offsets of a group and high-water marks, through a kafka-python consumer that
    never joins the group (it only fetches offsets). Blocking: call it from a worker thread.
    Partitions the group never committed count from the log start (auto_offset_reset=earliest)."""

    def __init__(
        self, bootstrap_servers: list[str], group_id: str, security: dict[str, Any] | None = None
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.security = security or {}
        self.group_id = group_id
        self._consumer: Any = None

    def _client(self) -> Any:
        from kafka import KafkaConsumer

        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,  # to fetch the group's committed offsets; never subscribes
                client_id=f"{self.group_id}-lag",
                enable_auto_commit=False,
                **self.security,
            )
        return self._consumer

    def read(
        self, partitions: Iterable[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """(committed offsets, high-water marks) for these partitions."""
        from kafka import TopicPartition as KafkaTP

        consumer = self._client()
        tps = [KafkaTP(topic, partition) for topic, partition in partitions]
        if not tps:
            return {}, {}
        ends = {(tp.topic, tp.partition): int(offset) for tp, offset in consumer.end_offsets(tps).items()}
        starts = {(tp.topic, tp.partition): int(o) for tp, o in consumer.beginning_offsets(tps).items()}
        committed: dict[TopicPartition, int] = {}
        for tp in tps:
            key = (tp.topic, tp.partition)
            offset = consumer.committed(tp)
            committed[key] = int(offset) if offset is not None and offset >= 0 else starts.get(key, 0)
        return committed, ends

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        self._consumer = None


@dataclass
class LagGauges:
    """Publishes a service's lag figures and removes the series of partitions it lost."""

    service: str
    clock: LagClock = field(default_factory=LagClock)
    _published: set[TopicPartition] = field(default_factory=set)

    def update(
        self, committed: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int], now: float
    ) -> list[PartitionLag]:
        figures = []
        for tp, end in ends.items():
            self.clock.observe(tp, now, end)
            lag = self.clock.lag(tp, committed.get(tp, 0), now)
            labels = (self.service, tp[0], str(tp[1]))
            CONSUMER_LAG_MESSAGES.labels(*labels).set(lag.messages)
            CONSUMER_LAG_SECONDS.labels(*labels).set(lag.seconds)
            figures.append(lag)
        for tp in self._published - set(ends):
            for gauge in (CONSUMER_LAG_MESSAGES, CONSUMER_LAG_SECONDS):
                gauge.remove(self.service, tp[0], str(tp[1]))
        self._published = set(ends)
        self.clock.forget(ends)
        LAG_SAMPLE_ERRORS.labels(self.service).set(0)
        return figures

    def failed(self) -> None:
        LAG_SAMPLE_ERRORS.labels(self.service).inc()
