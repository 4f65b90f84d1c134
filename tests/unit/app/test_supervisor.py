"""The supervisor behind `cep-bus up`: a dead service is restarted after a growing backoff, and one that
keeps dying makes it give up, naming the service. Real child processes, a simulated clock."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from cepbus_app.supervisor import GaveUp, RestartPolicy, Supervisor


def wait_dead(supervisor: Supervisor, name: str) -> None:
    deadline = time.monotonic() + 20
    while supervisor.processes[name].alive():
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.02)


def test_a_dead_service_is_restarted_after_a_doubling_backoff(tmp_path: Path) -> None:
    marker = tmp_path / "died-once"
    # the first run dies with 9; every later run stays up (as a service that recovered would)
    script = (
        "import pathlib, sys, time\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "if not m.exists():\n    m.write_text('x'); sys.exit(9)\n"
        "time.sleep(60)\n"
    )
    supervisor = Supervisor(
        log_dir=tmp_path,
        policy=RestartPolicy(first_delay_s=2.0, max_restarts=3),
        command=lambda name: [sys.executable, "-c", script],
    )
    try:
        supervisor.start("router")
        wait_dead(supervisor, "router")
        assert supervisor.check(now=100.0) == []  # death seen: restart due at 102
        assert supervisor.deaths() == {"router": 9}
        assert supervisor.check(now=101.0) == []
        assert supervisor.check(now=102.0) == ["router"]
        assert supervisor.processes["router"].alive() and supervisor.restarts() == {"router": 1}
        assert supervisor.check(now=200.0) == []  # alive: nothing to do
    finally:
        supervisor.stop_all()


def test_a_service_that_keeps_dying_makes_the_supervisor_give_up(tmp_path: Path) -> None:
    supervisor = Supervisor(
        log_dir=tmp_path,
        policy=RestartPolicy(first_delay_s=1.0, max_delay_s=4.0, max_restarts=2, window_s=300.0),
        command=lambda name: [sys.executable, "-c", "print('boom: no database'); raise SystemExit(3)"],
    )
    try:
        supervisor.start("ledger")
        now = 0.0
        delays = []
        for _ in range(2):
            wait_dead(supervisor, "ledger")
            supervisor.check(now=now)
            seen_at = now
            while not supervisor.check(now=now):
                now += 0.5
            delays.append(now - seen_at)
        assert delays == [1.0, 2.0]
        wait_dead(supervisor, "ledger")
        with pytest.raises(GaveUp, match="ledger died 3 times") as gave_up:
            supervisor.check(now=now)
        assert gave_up.value.service == "ledger" and gave_up.value.returncode == 3
        assert "boom: no database" in gave_up.value.tail
    finally:
        supervisor.stop_all()


def test_deaths_outside_the_window_are_forgiven(tmp_path: Path) -> None:
    supervisor = Supervisor(
        log_dir=tmp_path,
        policy=RestartPolicy(first_delay_s=1.0, max_restarts=1, window_s=10.0),
        command=lambda name: [sys.executable, "-c", "raise SystemExit(1)"],
    )
    try:
        supervisor.start("notifier")
        for now in (0.0, 100.0, 200.0):  # one death per 100 s: never two within 10 s
            wait_dead(supervisor, "notifier")
            supervisor.check(now=now)
            assert supervisor.check(now=now + 1.0) == ["notifier"]
        assert supervisor.restarts() == {"notifier": 3}
    finally:
        supervisor.stop_all()
