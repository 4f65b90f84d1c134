"""Starting, watching and stopping the bus's processes (router, notifier, ledger, deadletters, mailer) on
one machine, for `cep-bus up`, `cep-bus demo` and the integration tests. Each service is its own process.

`Supervisor.check` restarts a service that died, after a backoff that doubles with each death; one
that dies more than `RestartPolicy.max_restarts` times within `window_s` makes it raise `GaveUp`,
naming the service, so that `up` stops everything and exits non-zero instead of limping on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cepbus.runtime.logs import get_logger
from cepbus.runtime.settings import ServiceSettings
from cepbus_app.broker import port_open
from services.deadletters.settings import DeadLetterSettings
from services.ledger.settings import LedgerSettings
from services.mailer.settings import MailerSettings
from services.notifier.settings import NotifierSettings
from services.router.settings import RouterSettings

#: Each service, by the name `python -m services.<name>` runs, with its settings class.
SERVICES: dict[str, type[ServiceSettings]] = {
    "router": RouterSettings,
    "notifier": NotifierSettings,
    "ledger": LedgerSettings,
    "deadletters": DeadLetterSettings,
    "mailer": MailerSettings,
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


log = get_logger()


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    max_restarts: int = 5  # deaths tolerated within window_s; one more and the supervisor gives up
    window_s: float = 300.0


class GaveUp(RuntimeError):
    """A service kept dying: the supervisor stopped restarting it."""

    def __init__(self, service: str, returncode: int | None, deaths: int, tail: str) -> None:
        super().__init__(f"{service} died {deaths} times (last exit code {returncode}); not restarting it")
        self.service = service
        self.returncode = returncode
        self.tail = tail


@dataclass
class _Watch:
    deaths: list[float] = field(default_factory=list)
    restart_at: float | None = None
    restarts: int = 0
    last_returncode: int | None = None


@dataclass
class Supervisor:
    log_dir: Path = Path(".cepbus/logs")
    env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    # as `python -m services.<name>`, with the test instruments the environment asks for (instrumented.py)
    command: Callable[[str], list[str]] = lambda service: [
        sys.executable,
        "-m",
        "cepbus_app.instrumented",
        service,
    ]
    _watches: dict[str, _Watch] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, service: str, extra_env: Mapping[str, str] | None = None) -> ServiceProcess:
        """Start `service` (again); `extra_env` applies to this start only (a fault test's fault point)."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {sorted(SERVICES)}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{service}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                self.command(service),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CEPBUS_LOG_FORMAT": "json", **self.env, **(extra_env or {})},
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

    # -- supervision -------------------------------------------------------------------------------

    def restarts(self) -> dict[str, int]:
        """How many times each service was restarted after dying."""
        return {name: watch.restarts for name, watch in self._watches.items() if watch.restarts}

    def deaths(self) -> dict[str, int | None]:
        """Each service that died at least once, with its last exit code."""
        return {name: w.last_returncode for name, w in self._watches.items() if w.deaths}

    def check(self, now: float | None = None) -> list[str]:
        """Restart what died once its backoff is over; returns the services restarted now. Raises
        GaveUp when one died more than `policy.max_restarts` times within `policy.window_s`."""
        now = time.monotonic() if now is None else now
        restarted: list[str] = []
        with self._lock:
            for name, proc in list(self.processes.items()):
                watch = self._watches.setdefault(name, _Watch())
                if proc.alive():
                    continue
                if watch.restart_at is None:  # a death not seen before
                    watch.last_returncode = proc.process.returncode
                    watch.deaths = [t for t in watch.deaths if now - t <= self.policy.window_s] + [now]
                    if len(watch.deaths) > self.policy.max_restarts:
                        log.error("service_gave_up", service=name, deaths=len(watch.deaths))
                        raise GaveUp(name, watch.last_returncode, len(watch.deaths), self.tail(name))
                    delay = min(
                        self.policy.first_delay_s * 2 ** (len(watch.deaths) - 1), self.policy.max_delay_s
                    )
                    watch.restart_at = now + delay
                    log.warning(
                        "service_died",
                        service=name,
                        returncode=watch.last_returncode,
                        restart_in_s=delay,
                        deaths_in_window=len(watch.deaths),
                    )
                if now >= watch.restart_at:
                    self.start(name)
                    watch.restart_at = None
                    watch.restarts += 1
                    log.warning("service_restarted", service=name, restarts=watch.restarts)
                    restarted.append(name)
        return restarted

    def supervise(self, interval_s: float = 0.5) -> SupervisionThread:
        """Run `check` in a background thread until stopped; a GaveUp is kept for the caller to read."""
        thread = SupervisionThread(self, interval_s)
        thread.start()
        return thread

    def tail(self, service: str, lines: int = 30) -> str:
        path = self.processes[service].log_path
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_all(self) -> None:
        with self._lock:
            for proc in reversed(list(self.processes.values())):
                proc.stop()
            self.processes.clear()


class SupervisionThread(threading.Thread):
    def __init__(self, supervisor: Supervisor, interval_s: float) -> None:
        super().__init__(name="cepbus-supervisor", daemon=True)
        self.supervisor = supervisor
        self.interval_s = interval_s
        self.gave_up: GaveUp | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                self.supervisor.check()
            except GaveUp as exc:
                self.gave_up = exc
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
