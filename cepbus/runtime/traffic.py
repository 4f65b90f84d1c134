"""A client-side record of the Kafka requests each process makes, for the ACL test.

The embedded broker has no authorizer, so the test suite cannot learn from the broker which request a
production cluster would refuse. Instead, with `CEPBUS_TRAFFIC_LOG=<file>` set, every client of the bus
(the stream drivers, the publishing and partner SDKs, the dead-letter replay) appends one JSON line
per distinct (principal, operation, resource type, resource name) it uses: Read of a topic it consumes
and of its consumer group, Write of a topic it produces to, Describe of what it reads offsets of,
Create of the topic Faust makes for itself. `tests/integration/test_wiring_traffic.py` checks each line
against the generated KafkaUser ACLs with the simple authorizer's rules. Topic creation by the
services in development (`CEPBUS_CREATE_TOPICS`) is not recorded: production does not do it.

The principal is the KafkaUser the request would authenticate as: `cepbus-<service>` for a service,
`operator-<org>` or `partner-<org>` for an organisation's system (as the events' producer says).
Off (one dictionary lookup) when the variable is not set.
"""

from __future__ import annotations

import json
import os
import threading
from functools import cache

ENV = "CEPBUS_TRAFFIC_LOG"
_SERVICE_ORGS = {
    "cep-bus-router": "cepbus-router",
    "cep-bus-notifier": "cepbus-notifier",
    "cep-bus-ledger": "cepbus-ledger",
}
_seen: set[tuple[str, str, str, str]] = set()
_lock = threading.Lock()


def enabled() -> bool:
    return bool(os.environ.get(ENV))


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


def record(principal: str, operation: str, resource_type: str, name: str) -> None:
    """Note one request kind (once per process); nothing unless CEPBUS_TRAFFIC_LOG is set."""
    path = os.environ.get(ENV)
    if not path:
        return
    key = (principal, operation, resource_type, name)
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
        line = json.dumps(
            {
                "principal": principal,
                "operation": operation,
                "type": resource_type,
                "name": name,
                "pid": os.getpid(),
            }
        )
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


__all__ = ["ENV", "enabled", "principal_of_org", "record"]
