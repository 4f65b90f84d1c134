"""`cep-bus up` supervises: a service killed with SIGKILL is restarted (and serves again); one that keeps
dying makes `up` stop everything and exit non-zero naming it. `up` runs as a real command, with its own
embedded broker on a free port (so killing things leaves the session's bus alone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cepbus_app.broker import port_open
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def runs_service(cmdline: list[bytes], service: str | None) -> bool:
    """Whether a command line runs `service` (any service when None): `python -m services.<name>`, or
    `python -m cepbus_app.instrumented <name>` as the supervisor starts them."""
    names = [arg.decode(errors="replace") for arg in cmdline]
    ran = [arg.removeprefix("services.") for arg in names if arg.startswith("services.")]
    if "cepbus_app.instrumented" in names:
        ran += names[names.index("cepbus_app.instrumented") + 1 :][:1]
    return bool(ran) and (service is None or service in ran)


def children_running(parent: int, service: str | None) -> list[int]:
    """Pids of `parent`'s children whose command line runs `service` (any when None; read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and runs_service(cmdline, service) and " Z " not in stat[stat.rindex(")") :][:4]:
            found.append(int(entry.name))
    return found


@dataclass
class Up:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    output: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, what: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while what not in self.text():
            assert self.process.poll() is None, f"up exited {self.process.returncode}:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what!r} within {timeout_s}s:\n{self.text()[-3000:]}"
            time.sleep(0.2)

    def service_pid(self, service: str, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while not (pids := children_running(self.process.pid, service)):
            assert time.monotonic() < deadline, f"no {service} process under up"
            time.sleep(0.1)
        return pids[0]


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[object]:
    started: list[Up] = []

    def start(*args: str) -> Up:
        services = ("router", "notifier", "ledger", "deadletters", "mailer")
        ports = {name: free_port() for name in (*services, "referrals_http", "broker", "smtp")}
        suffix = uuid.uuid4().hex[:8]
        env = {
            **os.environ,
            "CEPBUS_TANSU_PORT": str(ports["broker"]),
            "CEPBUS_TANSU_LOG_FILE": str(tmp_path / "tansu.log"),
            "CEPBUS_BOOTSTRAP_SERVERS": f"127.0.0.1:{ports['broker']}",
            "CEPBUS_LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "CEPBUS_ROUTER_DATABASE_URL": f"sqlite:///{tmp_path / 'router.db'}",
            "CEPBUS_REFERRALS_DATABASE_URL": f"sqlite:///{tmp_path / 'referrals.db'}",
            "CEPBUS_NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'notifier.db'}",
            "CEPBUS_DEADLETTERS_DATABASE_URL": f"sqlite:///{tmp_path / 'deadletters.db'}",
            "CEPBUS_MAILER_DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
            "CEPBUS_MAILER_SMTP_PORT": str(ports["smtp"]),  # nothing listens: its emails wait
            "CEPBUS_REFERRALS_HTTP_PORT": str(ports["referrals_http"]),
            "COLUMNS": "200",
        }
        for service in services:
            env[f"CEPBUS_{service.upper()}_METRICS_PORT"] = str(ports[service])
            env[f"CEPBUS_{service.upper()}_GROUP_ID"] = f"cepbus-{service}-up-{suffix}"
        output = tmp_path / f"up-{len(started)}.out"
        with output.open("w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "cepbus_app", "up", *args],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
                text=True,
            )
        up = Up(process, ports, output)
        started.append(up)
        return up

    yield start
    for up in started:
        if up.process.poll() is None:
            up.process.send_signal(signal.SIGTERM)
            try:
                up.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.process.kill()


def test_a_service_killed_under_up_is_restarted(start_up) -> None:  # type: ignore[no-untyped-def]
    up = start_up()
    up.wait_for("cep-bus is up")
    first = up.service_pid("ledger")
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # a new ledger process, serving metrics again
        pids = children_running(up.process.pid, "ledger")
        if pids and pids[0] != first and port_open("127.0.0.1", up.ports["ledger"]):
            break
        assert time.monotonic() < deadline, f"the ledger was not restarted:\n{up.text()[-3000:]}"
        time.sleep(0.2)
    assert up.process.poll() is None, "up stopped when one service died"
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=60) == 0
    text = up.text()
    assert "ledger: died (last exit code -9), restarted 1 times" in text


def test_a_service_that_keeps_dying_stops_up_with_an_error_naming_it(start_up) -> None:  # type: ignore[no-untyped-def]
    up = start_up("--max-restarts", "1")
    up.wait_for("cep-bus is up")
    first = up.service_pid("notifier")
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # wait for the restart, then kill it again: a second death within the window
        pids = [pid for pid in children_running(up.process.pid, "notifier") if pid != first]
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert up.process.wait(timeout=90) == 3
    text = up.text()
    assert "notifier died 2 times" in text and "stopping cep-bus" in text
    assert "Traceback" not in text
    assert not children_running(up.process.pid, None)  # everything was stopped
