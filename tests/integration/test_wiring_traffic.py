"""The Kafka requests every process made during this session, checked against the generated ACLs.

The embedded broker has no authorizer: each client of the bus records (client-side,
`cepbus/runtime/traffic.py`) the requests it makes, as the KafkaUser it would authenticate as, into the
session's `CEPBUS_TRAFFIC_LOG` (set in tests/conftest.py, inherited by every service process). This
file runs after the session's other integration tests (pytest collects files in name order) and checks
each recorded request with Kafka's simple-authorizer rules against `deploy/k8s`'s KafkaUsers. A request
the ACLs would refuse fails the test; ACLs that no process used are printed."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cepbus.runtime.traffic import ENV
from cepbus_app.k8s import kafka_users
from cepbus_app.supervisor import SERVICES
from tests.support.browser import CHROMIUM
from tests.support.bus import RunningBus

pytestmark = pytest.mark.integration

#: What an ACL operation implies besides itself (Kafka's AclAuthorizer: Describe with Read, Write,
#: Delete or Alter; All implies everything).
_IMPLIES = {"Read": {"Describe"}, "Write": {"Describe"}, "Delete": {"Describe"}, "Alter": {"Describe"}}


def allows(acl: dict[str, Any], operation: str, resource_type: str, name: str) -> bool:
    resource = acl["resource"]
    if resource["type"] != resource_type:
        return False
    pattern, acl_name = resource.get("patternType", "literal"), resource["name"]
    if not (acl_name == "*" or (name.startswith(acl_name) if pattern == "prefix" else name == acl_name)):
        return False
    granted = set(acl["operations"])
    return "All" in granted or operation in granted or any(operation in _IMPLIES.get(g, ()) for g in granted)


def refused(requests: list[dict[str, str]], users: dict[str, list[dict[str, Any]]]) -> list[dict[str, str]]:
    return [
        r
        for r in requests
        if not any(allows(acl, r["operation"], r["type"], r["name"]) for acl in users.get(r["principal"], []))
    ]


def req(principal: str, operation: str, resource_type: str, name: str) -> dict[str, str]:
    return {"principal": principal, "operation": operation, "type": resource_type, "name": name}


def _users() -> dict[str, list[dict[str, Any]]]:
    return {u["metadata"]["name"]: u["spec"]["authorization"]["acls"] for u in kafka_users()}


def test_the_authorizer_rules_here_refuse_what_kafka_refuses() -> None:
    """The checker can fail: a partner reading another's inbox, the notifier writing breaches, a group
    outside a prefix, the router creating a topic."""
    users = _users()
    bad = [
        req("partner-exemple-formation-r11", "Read", "topic", "cep.referral.inbox.apec-r11"),
        req("cepbus-notifier", "Write", "topic", "cep.regulation.breach"),
        req("partner-exemple-formation-r11", "Read", "group", "cepbus-router"),
        req("cepbus-router", "Create", "topic", "cep.intake.registered"),
        req("nobody", "Describe", "topic", "cep.intake.registered"),
    ]
    assert refused(bad, users) == bad
    good = [
        req("cepbus-router", "Describe", "topic", "cep.intake.registered"),
        req("cepbus-router", "Write", "topic", "cep.referral.inbox.apec-r11"),
        req("cepbus-router", "Read", "group", "cepbus-router-test-1"),
    ]
    assert refused(good, users) == []


def test_every_recorded_request_is_allowed_by_the_generated_acls(bus: RunningBus) -> None:
    path = Path(os.environ[ENV])
    requests = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    principals = Counter(r["principal"] for r in requests)
    # the session's bus, fault buses, `up`, partners and publishers all ran: their requests are here
    assert {f"cepbus-{s}" for s in SERVICES} <= set(principals), principals
    assert any(p.startswith("operator-") for p in principals) and any(
        p.startswith("partner-") for p in principals
    )
    if CHROMIUM.exists():  # the inbox's browser test published through the inbox, as its own user
        assert "cepbus-inbox" in principals, principals
    users = _users()
    unique = {(r["principal"], r["operation"], r["type"], r["name"]): r for r in requests}
    denied = refused(list(unique.values()), users)
    assert not denied, "requests the cluster would refuse:\n" + "\n".join(
        f"  {r['principal']}: {r['operation']} {r['type']} {r['name']}" for r in denied[:40]
    )
    # ACLs of the services that nothing used: reported, not failed (some topics see no traffic in tests)
    for service in SERVICES:
        user = f"cepbus-{service}"
        used = [r for r in unique.values() if r["principal"] == user]
        unused = [
            f"{a['resource']['name']} {a['operations']}"
            for a in users[user]
            if not any(allows(a, r["operation"], r["type"], r["name"]) for r in used)
        ]
        print(f"{user}: {len(used)} request kinds recorded, ACLs unused in this session: {unused}")


def test_no_service_reached_outside_its_wiring(bus: RunningBus) -> None:
    """The drivers refuse undeclared topics before the broker (`WiringViolation` in the log)."""
    for service in SERVICES:
        text = bus.supervisor.processes[service].log_path.read_text(errors="replace")
        assert "not in its wiring" not in text, (
            f"{service} stepped outside its wiring:\n{bus.supervisor.tail(service)}"
        )
