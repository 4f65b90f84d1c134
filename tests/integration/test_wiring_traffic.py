"""What the services did during this session stayed within the wiring the ACLs are made from.

The drivers refuse (before the broker) to subscribe to or produce on a topic their principal does not
declare (`cepbus/contract/wiring.py`), so a service stepping outside its ACLs shows as a
`WiringViolation` in its log. This file runs after the session's other integration tests (pytest
collects files in name order; "wiring" sorts after the rest) and reads the session bus's logs."""

from __future__ import annotations

import pytest

from cepbus_app.supervisor import SERVICES
from tests.support.bus import RunningBus

pytestmark = pytest.mark.integration


def test_no_service_reached_outside_its_wiring(bus: RunningBus) -> None:
    for service in SERVICES:
        text = bus.supervisor.processes[service].log_path.read_text(errors="replace")
        assert "not in its wiring" not in text, (
            f"{service} stepped outside its wiring:\n{bus.supervisor.tail(service)}"
        )
        assert "WiringViolation" not in text
