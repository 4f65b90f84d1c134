"""Injectable fault points, for the fault tests: kill a service at the worst moment (between its store
commit and its send). `CEPBUS_FAULT_POINTS=router:after_commit,ledger:after_commit` makes that service
exit at once (as `kill -9` would) the first time it reaches the point. Ignored in production.
"""

from __future__ import annotations

import os

from cepbus.runtime.logs import get_logger
from cepbus.trust.settings import TrustSettings

AFTER_COMMIT = "after_commit"  # the batch's state and outbox are committed, nothing sent or acked yet


def _armed() -> frozenset[str]:
    text = os.environ.get("CEPBUS_FAULT_POINTS", "")
    points = frozenset(p.strip() for p in text.split(",") if p.strip())
    if points and TrustSettings().production:
        get_logger().warning("fault_points_ignored_in_production", points=sorted(points))
        return frozenset()
    return points


_ARMED = _armed()


def reached(service: str, point: str) -> None:
    """Exit the process at once (no cleanup, no flush) if `service:point` is armed."""
    if f"{service}:{point}" in _ARMED:
        get_logger().error("fault_point_reached", point=point)
        os._exit(70)


__all__ = ["AFTER_COMMIT", "reached"]
