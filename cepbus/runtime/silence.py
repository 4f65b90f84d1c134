"""Operator silence: seconds since the last event from each organisation of the directory.

The law asks operators to report their activity; an operator that sends nothing for months gets a
formal notice. Every organisation of the directory has a series from the service's start (the
baseline until its first event), so a silent operator shows instead of being absent. Events from
producers outside the directory (cep-bus's own services) are not tracked: the label stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from cepbus.runtime.metrics import OPERATOR_LAST_EVENT_TIMESTAMP, OPERATOR_SILENT_SECONDS


@dataclass(frozen=True)
class KnownOrganisation:
    org_id: str
    kind: str
    region_code: str


@dataclass
class OperatorSilence:
    service: str
    organisations: Iterable[KnownOrganisation]
    clock: Callable[[], float] = time.time
    _known: dict[str, KnownOrganisation] = field(default_factory=dict, init=False)
    _last_seen: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        started = self.clock()
        for org in self.organisations:
            self._known[org.org_id] = org
            self._last_seen[org.org_id] = started
            labels = (self.service, org.org_id, org.kind, org.region_code)
            OPERATOR_LAST_EVENT_TIMESTAMP.labels(*labels).set(started)
            OPERATOR_SILENT_SECONDS.labels(*labels).set_function(self._silent_for(org.org_id))

    def _silent_for(self, org_id: str) -> Callable[[], float]:
        return lambda: max(0.0, self.clock() - self._last_seen[org_id])

    def seed(self, last_seen: Mapping[str, float]) -> None:
        """Start from what the stores remember (Unix seconds of each organisation's last event), so that
        silence is measured across restarts; organisations never heard of keep the start time."""
        for org_id, at in last_seen.items():
            org = self._known.get(org_id)
            if org is None or at <= 0:
                continue
            self._last_seen[org_id] = min(self._last_seen[org_id], at)
            OPERATOR_LAST_EVENT_TIMESTAMP.labels(self.service, org.org_id, org.kind, org.region_code).set(at)

    def seen(self, org_id: str) -> bool:
        """Record an event from `org_id`; False (and nothing recorded) outside the directory."""
        org = self._known.get(org_id)
        if org is None:
            return False
        now = self.clock()
        self._last_seen[org_id] = now
        OPERATOR_LAST_EVENT_TIMESTAMP.labels(self.service, org.org_id, org.kind, org.region_code).set(now)
        return True

    def silent_seconds(self, org_id: str) -> float:
        return self._silent_for(org_id)()
