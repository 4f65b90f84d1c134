"""Retrying a route while its database or the broker is away: the bookkeeping both drivers share.

An outage is not a verdict on the events: the batch is held (never acked, never dead-lettered) and
tried again after a delay that doubles up to a cap. Meanwhile the route shows as blocked on the metric
`cepbus_route_blocked`, readiness says why (`HealthState.blocked`), and each attempt is logged. How to
wait (polling a paused consumer, or `asyncio.sleep`) is the driver's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cepbus.runtime.health import HealthState
from cepbus.runtime.logs import get_logger
from cepbus.runtime.metrics import BATCHES_RETRIED, PROCESSING_ERRORS, ROUTE_BLOCKED

RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0

log = get_logger()


@dataclass
class RouteRetry:
    """One route's retries: `failed(exc)` after each failed attempt gives the delay to wait before the
    next; `cleared()` once an attempt succeeded (or the batch was abandoned)."""

    service: str
    route: str
    health: HealthState
    first_s: float = RETRY_FIRST_S
    max_s: float = RETRY_MAX_S
    attempts: int = field(default=0, init=False)
    _delay: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        ROUTE_BLOCKED.labels(self.service, self.route).set(0)  # the series exists from the start

    def failed(self, exc: BaseException) -> float:
        delay = self._delay = self.first_s if self.attempts == 0 else min(self._delay * 2, self.max_s)
        self.attempts += 1
        error = f"{type(exc).__name__}: {exc}"
        PROCESSING_ERRORS.labels(self.service, "store_unavailable").inc()
        BATCHES_RETRIED.labels(self.service, self.route).inc()
        ROUTE_BLOCKED.labels(self.service, self.route).set(1)
        self.health.blocked = f"{self.route}: {error}"[:300]
        log.error("batch_retry", route=self.route, error=error, retry_in_s=delay)
        return delay

    def cleared(self) -> None:
        if self.attempts == 0:
            return
        self.attempts = 0
        ROUTE_BLOCKED.labels(self.service, self.route).set(0)
        if self.health.blocked is not None and self.health.blocked.startswith(f"{self.route}:"):
            self.health.blocked = None


__all__ = ["RETRY_FIRST_S", "RETRY_MAX_S", "RouteRetry"]
