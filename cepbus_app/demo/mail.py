"""The demo's SMTP server: an aiosmtpd server on a free loopback port, which the mailer the demo starts
sends to, counting what it receives by kind (the `X-CEP-Bus-Kind` header) for the summary.

aiosmtpd is a development tool (the `test` extra, which `scripts/bootstrap.sh` installs): without it the
demo runs as before and its summary says no emails were counted. Nothing leaves the machine: the demo's
address book is the mailer's development one (`notifications@<org>.example.invalid`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from email.parser import BytesHeaderParser
from typing import Any

from cepbus.runtime.logs import get_logger

#: The header the mailer names each email's kind in (services/mailer/sending.py).
KIND_HEADER = "X-CEP-Bus-Kind"


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoMailbox:
    """`start()` returns the mailer's settings pointing at it (none without aiosmtpd); `by_kind()` counts."""

    def __init__(self) -> None:
        self.port = 0
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = BytesHeaderParser().parsebytes(envelope.original_content or envelope.content)
        with self._lock:
            self._counts[str(headers.get(KIND_HEADER, "unknown"))] += 1
        return "250 2.0.0 accepted"

    def start(self) -> dict[str, str]:
        try:
            from aiosmtpd.controller import Controller
        except ImportError:  # not a development install: the demo runs without counting emails
            get_logger().warning("demo_without_smtp_server", reason="aiosmtpd is not installed")
            return {}
        self.port = _free_loopback_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return {"CEPBUS_MAILER_SMTP_HOST": "127.0.0.1", "CEPBUS_MAILER_SMTP_PORT": str(self.port)}

    @property
    def running(self) -> bool:
        return self._controller is not None

    def by_kind(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def wait_for(self, kind: str, want: int, timeout_s: float) -> dict[str, int]:
        """The counts by kind, once `want` emails of `kind` arrived or after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.by_kind().get(kind, 0) < want and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.by_kind()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


__all__ = ["KIND_HEADER", "DemoMailbox"]
