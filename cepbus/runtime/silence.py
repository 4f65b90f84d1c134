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


@dataclass(frozen=True)
class SilenceSeed:
    """What a service's stores remember, in Unix seconds: each organisation's last event, and since
    when the stores have been listening (an organisation never heard of is silent since then)."""

    last_seen: Mapping[str, float]
    listening_since: float | None = None


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

    def seed(self, remembered: SilenceSeed) -> None:
        """Start from what the stores remember, so that silence is measured across restarts and
        deployments: each organisation from its last event, one never heard of from when the stores
        started listening. Only ever moves a baseline back in time (never past this process's start)."""
        since = remembered.listening_since
        for org_id, org in self._known.items():
            at = remembered.last_seen.get(org_id, since)
            if at is None or at <= 0 or at >= self._last_seen[org_id]:
                continue
            self._last_seen[org_id] = at
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
