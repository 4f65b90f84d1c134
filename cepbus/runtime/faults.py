"""Injectable fault points, for the fault tests; ignored in production.

`CEPBUS_FAULT_POINTS` is a comma-separated list of `service:point[=count]`:

- `router:after_commit` makes the router exit at once (as `kill -9` would) the first time a batch's
  state and outbox are committed and nothing is sent or acknowledged yet: the worst moment.
- `router:send_fails=3` makes the router's first 3 sends to the broker fail (as an unreachable or
  refusing broker would), before anything is handed to the producer.
"""

from __future__ import annotations

import os
import threading

from cepbus.runtime.logs import get_logger
from cepbus.trust.settings import TrustSettings

AFTER_COMMIT = "after_commit"  # the batch's state and outbox are committed, nothing sent or acked yet
SEND_FAILS = "send_fails"


class InjectedSendFailure(ConnectionError):
    """A send the fault point made fail: the driver must retry it like any broker failure."""


def _armed() -> dict[str, int]:
    text = os.environ.get("CEPBUS_FAULT_POINTS", "")
    points: dict[str, int] = {}
    for item in (p.strip() for p in text.split(",")):
        if item:
            name, _, count = item.partition("=")
            points[name] = int(count) if count else 1
    if points and TrustSettings().production:
        get_logger().warning("fault_points_ignored_in_production", points=sorted(points))
        return {}
    return points


_ARMED = _armed()
_LOCK = threading.Lock()


def reached(service: str, point: str) -> None:
    """Exit the process at once (no cleanup, no flush) if `service:point` is armed."""
    if f"{service}:{point}" in _ARMED:
        get_logger().error("fault_point_reached", point=point)
        os._exit(70)


def before_send(service: str) -> None:
    """Raise InjectedSendFailure while `service:send_fails=N` has failures left."""
    key = f"{service}:{SEND_FAILS}"
    with _LOCK:
        left = _ARMED.get(key, 0)
        if left <= 0:
            return
        _ARMED[key] = left - 1
    get_logger().error("fault_point_reached", point=SEND_FAILS, failures_left=left - 1)
    raise InjectedSendFailure(f"injected send failure ({left - 1} left)")


__all__ = ["AFTER_COMMIT", "SEND_FAILS", "InjectedSendFailure", "before_send", "reached"]
