"""A client-side record of the Kafka requests each process makes, for the ACL test.

The embedded broker has no authorizer, so the test suite cannot learn from the broker which request a
production cluster would refuse. Instead, a `TrafficLog` attached to a client of the bus (the stream
drivers, the publishing and partner SDKs, the dead-letter replay: `cepbus.runtime.instruments`) appends
one JSON line per distinct (principal, operation, resource type, resource name) it uses: Read of a
topic it consumes and of its consumer group, Write of a topic it produces to, Describe of what it reads
offsets of, Create of the topic Faust makes for itself. `tests/integration/test_wiring_traffic.py`
checks each line against the generated KafkaUser ACLs with the simple authorizer's rules. Topic
creation by the services in development (`CEPBUS_CREATE_TOPICS`) is not recorded: production does not
do it.

The principal is the KafkaUser the request would authenticate as: `cepbus-<service>` for a service,
`operator-<org>` or `partner-<org>` for an organisation's system (as the events' producer says).

Nothing here reads the environment: the tests, or the composition root for the processes it starts
(`cepbus_app/instrumented.py`, from `CEPBUS_TRAFFIC_LOG`), decide where the log goes.
"""

from __future__ import annotations

import json
import os
import threading
from functools import cache
from pathlib import Path

#: The variable the composition root reads to attach a `TrafficLog` to the processes it starts.
ENV = "CEPBUS_TRAFFIC_LOG"
_SERVICE_ORGS = {
    "cep-bus-router": "cepbus-router",
    "cep-bus-notifier": "cepbus-notifier",
    "cep-bus-ledger": "cepbus-ledger",
}


@cache
def _operators() -> frozenset[str]:
    from cepbus.reference import load_reference

    return frozenset(org.org_id for org in load_reference().organisations())


def principal_of_org(org_id: str) -> str:
    """The KafkaUser an organisation's (or a service's) producer authenticates as."""
    if org_id in _SERVICE_ORGS:
        return _SERVICE_ORGS[org_id]
    if org_id.startswith("cepbus-"):
        return org_id
    return f"operator-{org_id}" if org_id in _operators() else f"partner-{org_id}"


class TrafficLog:
    """Appends each distinct request kind once per process to a JSON-lines file (several processes may
    share the file: each line is one `write` of a short line, in append mode)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: set[tuple[str, str, str, str]] = set()
        self._lock = threading.Lock()

    def record(self, principal: str, operation: str, resource_type: str, name: str) -> None:
        key = (principal, operation, resource_type, name)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            line = json.dumps(
                {
                    "principal": principal,
                    "operation": operation,
                    "type": resource_type,
                    "name": name,
                    "pid": os.getpid(),
                }
            )
            with self.path.open("a", encoding="utf-8") as log:
                log.write(line + "\n")


__all__ = ["ENV", "TrafficLog", "principal_of_org"]
