"""Liveness and readiness beside /metrics, on the service's one ops port.

- `/healthz` (liveness): the service's event loop is turning (a heartbeat task stamps it); a
  process whose loop is stuck for `stall_after_s` answers 503 so Kubernetes restarts it.
- `/readyz` (readiness): the Faust worker has started and its consumer has received a partition
  assignment (it takes part in its group); 503 before, and during a rebalance.
- `/metrics`: Prometheus text format.

One service per process, so the state is a module-level singleton the runtime updates.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


@dataclass
class HealthState:
    stall_after_s: float = 30.0
    started_at: float = field(default_factory=time.monotonic)
    last_beat: float | None = None
    worker_started: bool = False
    assignment: frozenset[tuple[str, int]] | None = None  # None: no rebalance completed yet
    blocked: str | None = None  # a batch held back while its database or the broker is unavailable

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def alive(self, now: float | None = None) -> tuple[bool, str]:
        now = time.monotonic() if now is None else now
        if self.last_beat is None:
            return True, "starting"
        since = now - self.last_beat
        if since > self.stall_after_s:
            return False, f"event loop silent for {since:.1f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.worker_started:
            return False, "worker not started"
        if self.assignment is None:
            return False, "no partition assignment yet"
        if self.blocked is not None:
            return False, f"partitions paused, retrying: {self.blocked}"
        return True, f"{len(self.assignment)} partitions assigned"


HEALTH = HealthState()


class _OpsHandler(BaseHTTPRequestHandler):
    state: HealthState = HEALTH

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/livez"):
            self._answer(*self.state.alive())
        elif path == "/readyz":
            self._answer(*self.state.ready())
        else:
            self._send(404, b"not found: /metrics /healthz /readyz\n", "text/plain")

    def _answer(self, ok: bool, detail: str) -> None:
        body = json.dumps({"ok": ok, "detail": detail}).encode() + b"\n"
        self._send(200 if ok else 503, body, "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: no access log
        return


def serve_ops(port: int, addr: str = "0.0.0.0", state: HealthState = HEALTH) -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz from a daemon thread."""
    handler = type("OpsHandler", (_OpsHandler,), {"state": state})
    server = ThreadingHTTPServer((addr, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="cepbus-ops-http", daemon=True).start()
    return server
