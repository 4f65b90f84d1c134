"""A real SMTP server for the mailer's tests and the demo's: aiosmtpd on a loopback port, keeping every
message it accepted (the parsed message and its envelope recipients). It can be stopped and started
again on the same port (an SMTP outage), refuse some recipients for good (550), and require a login."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    message: EmailMessage
    recipients: tuple[str, ...]

    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        return "" if body is None else str(body.get_content())

    def html(self) -> str:
        body = self.message.get_body(preferencelist=("html",))
        return "" if body is None else str(body.get_content())

    def raw(self) -> bytes:
        return self.message.as_bytes()


@dataclass
class MailSink:
    """`with MailSink(port) as sink:` an SMTP server on 127.0.0.1:`port` until the block ends."""

    port: int
    refuse: frozenset[str] = frozenset()  # recipients refused with 550
    login: tuple[str, str] | None = None  # (user, password) it requires, over plain SMTP (tests only)
    received: list[Received] = field(default_factory=list)
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- aiosmtpd's handler hooks ------------------------------------------------------------------

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.received.append(Received(parsed, tuple(envelope.rcpt_tos)))
        return "250 2.0.0 accepted"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.login is not None
        ok = ok and (data.login.decode(), data.password.decode()) == self.login
        return AuthResult(success=ok, handled=False)

    # -- running -----------------------------------------------------------------------------------

    def start(self) -> MailSink:
        options: dict[str, Any] = {}
        if self.login is not None:
            options = {"authenticator": self._authenticate, "auth_require_tls": False, "auth_required": True}
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reading -----------------------------------------------------------------------------------

    def messages(self, where: Callable[[Received], bool] = lambda r: True) -> list[Received]:
        with self._lock:
            return [r for r in self.received if where(r)]

    def wait_for(
        self, want: int, where: Callable[[Received], bool] = lambda r: True, timeout_s: float = 30.0
    ) -> list[Received]:
        """The messages `where` selects, once there are `want` of them or after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        found = self.messages(where)
        while len(found) < want and time.monotonic() < deadline:
            time.sleep(0.1)
            found = self.messages(where)
        return found

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.messages():
            kind = str(r.message.get("X-CEP-Bus-Kind", "?"))
            counts[kind] = counts.get(kind, 0) + 1
        return counts
