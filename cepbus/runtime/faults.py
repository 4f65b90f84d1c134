"""Fault points for the fault tests (`cepbus.runtime.instruments.FaultPoints`), armed from a spec the
test gives; never armed by importing this module, never read from the environment here.

A spec is a comma-separated list of `service:point[=count]`:

- `router:after_commit` makes the router exit at once (as `kill -9` would) the first time a batch's
  state and outbox are committed and nothing is sent or acknowledged yet: the worst moment.
- `router:send_fails=3` makes the router's first 3 sends to the broker fail (as an unreachable or
  refusing broker would), before anything is handed to the producer.

The composition root arms them for the processes it starts from `CEPBUS_FAULT_POINTS`, and refuses to
in production (`cepbus_app/instrumented.py`).
"""

from __future__ import annotations

import os
import threading

from cepbus.runtime.instruments import AFTER_COMMIT
from cepbus.runtime.logs import get_logger

#: The variable the composition root reads to arm fault points in the processes it starts.
ENV = "CEPBUS_FAULT_POINTS"
SEND_FAILS = "send_fails"


class InjectedSendFailure(ConnectionError):
    """A send the fault point made fail: the driver must retry it like any broker failure."""


def parse_fault_points(spec: str) -> dict[str, int]:
    """`router:after_commit,router:send_fails=3` -> {"router:after_commit": 1, "router:send_fails": 3}."""
    points: dict[str, int] = {}
    for item in (p.strip() for p in spec.split(",")):
        if item:
            name, _, count = item.partition("=")
            points[name] = int(count) if count else 1
    return points


class ArmedFaults:
    """The fault points of one process."""

    def __init__(self, points: dict[str, int]) -> None:
        self._armed = dict(points)
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, spec: str) -> ArmedFaults:
        return cls(parse_fault_points(spec))

    @property
    def armed(self) -> dict[str, int]:
        return dict(self._armed)

    def reached(self, service: str, point: str) -> None:
        """Exit the process at once (no cleanup, no flush) if `service:point` is armed."""
        if f"{service}:{point}" in self._armed:
            get_logger().error("fault_point_reached", point=point)
            os._exit(70)

    def before_send(self, service: str) -> None:
        """Raise InjectedSendFailure while `service:send_fails=N` has failures left."""
        key = f"{service}:{SEND_FAILS}"
        with self._lock:
            left = self._armed.get(key, 0)
            if left <= 0:
                return
            self._armed[key] = left - 1
        get_logger().error("fault_point_reached", point=SEND_FAILS, failures_left=left - 1)
        raise InjectedSendFailure(f"injected send failure ({left - 1} left)")


__all__ = ["AFTER_COMMIT", "ENV", "SEND_FAILS", "ArmedFaults", "InjectedSendFailure", "parse_fault_points"]
