"""What the tests attach to a process to watch it or break it: a record of the Kafka requests it makes
(`KafkaRequests`, for the ACL test) and fault points (`FaultPoints`, for the fault tests).

Production code only calls these protocols; it never reads an environment variable for them. By
default nothing is attached (`NO_INSTRUMENTS`): the calls cost one method call on an object that does
nothing. The tests, or the composition root on their behalf (`cepbus_app/instrumented.py`), build real
ones (`cepbus.runtime.traffic.TrafficLog`, `cepbus.runtime.faults.ArmedFaults`) and pass them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

#: The batch's state and outbox are committed, nothing sent or acknowledged yet: the worst moment.
AFTER_COMMIT = "after_commit"


class KafkaRequests(Protocol):
    """Notes each kind of request a client makes, as the Kafka principal it authenticates as."""

    def record(self, principal: str, operation: str, resource_type: str, name: str) -> None: ...


class FaultPoints(Protocol):
    """Makes a process fail where a test asks it to."""

    def reached(self, service: str, point: str) -> None:
        """Called at a named point of the runtime (`AFTER_COMMIT`); may end the process."""

    def before_send(self, service: str) -> None:
        """Called before anything is handed to the producer; may raise as a failing broker would."""


class NotRecorded:
    def record(self, principal: str, operation: str, resource_type: str, name: str) -> None:
        return None


class NoFaults:
    def reached(self, service: str, point: str) -> None:
        return None

    def before_send(self, service: str) -> None:
        return None


@dataclass(frozen=True)
class Instruments:
    requests: KafkaRequests = field(default_factory=NotRecorded)
    faults: FaultPoints = field(default_factory=NoFaults)


NO_INSTRUMENTS = Instruments()

__all__ = [
    "AFTER_COMMIT",
    "NO_INSTRUMENTS",
    "FaultPoints",
    "Instruments",
    "KafkaRequests",
    "NoFaults",
    "NotRecorded",
]
