"""Starting and stopping the bus's processes (broker, router, notifier, ledger) on one machine,
for `cep-bus up`, `cep-bus demo` and the integration tests. Each service is its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cepbus.runtime.settings import ServiceSettings
from cepbus_app.broker import port_open
from services.ledger.settings import LedgerSettings
from services.notifier.settings import NotifierSettings
from services.router.settings import RouterSettings

#: Each service, by the name `python -m services.<name>` runs, with its settings class.
SERVICES: dict[str, type[ServiceSettings]] = {
    "router": RouterSettings,
    "notifier": NotifierSettings,
    "ledger": LedgerSettings,
}


def metrics_port(service: str) -> int:
    return SERVICES[service]().metrics_port


def service_running(service: str) -> bool:
    """A service answering on its metrics port is taken as running."""
    port = metrics_port(service)
    return bool(port) and port_open("127.0.0.1", port)


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.alive():
            self.process.kill()
            self.process.wait()


@dataclass
class Supervisor:
    log_dir: Path = Path(".cepbus/logs")
    env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self, service: str) -> ServiceProcess:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {sorted(SERVICES)}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{service}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CEPBUS_LOG_FORMAT": "json", **self.env},
            )
        self.processes[service] = ServiceProcess(service, process, log_path)
        return self.processes[service]

    def wait_metrics(self, service: str, port: int, timeout_s: float = 30.0) -> None:
        """Wait until the service serves metrics (it has started), or fail with its log's tail."""
        deadline = time.monotonic() + timeout_s
        proc = self.processes[service]
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{service} exited with {proc.process.returncode}:\n{self.tail(service)}")
            if port_open("127.0.0.1", port):
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"{service} did not serve metrics on {port} within {timeout_s}s:\n{self.tail(service)}"
        )

    def tail(self, service: str, lines: int = 30) -> str:
        path = self.processes[service].log_path
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_all(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()
        self.processes.clear()
