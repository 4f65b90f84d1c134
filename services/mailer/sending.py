"""Sending the mail outbox with smtplib, from the send timer: claim what is due, send it over one SMTP
session, mark each email sent once the server accepted it; on failure keep it, its attempts counted,
for a later try (exponential backoff, capped). Nothing is ever dropped: an email the server refuses for
good (5xx) is retried at the capped delay and keeps the oldest-pending alert firing until someone fixes
the address book or the server.

One look sends at most `batch_max` emails and starts none after `budget_s`, so the stream driver, which
runs timers between batches, is never held long; what it did not try is due again at once.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import Outgoing
from services.mailer.handlers import now_ms
from services.mailer.metrics import EMAILS_PENDING, EMAILS_SENT, OLDEST_PENDING_SECONDS, SEND_FAILURES
from services.mailer.settings import MailerSettings
from services.mailer.store import MailerStore, PendingEmail

log = get_logger()

#: How long a claim holds an email against other replicas (longer than any look can last).
LEASE_MS = 300_000
#: How often, at most, the expired tombstones and waiting steps are dropped.
PRUNE_EVERY_MS = 3_600_000
#: The header that says which kind of email a message is (mail filters, the demo's count).
KIND_HEADER = "X-CEP-Bus-Kind"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    starttls: bool
    username: str | None
    password: str | None
    timeout_s: float
    from_address: str

    @classmethod
    def from_settings(cls, settings: MailerSettings) -> SmtpConfig:
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_starttls,
            settings.smtp_username,
            settings.password(),
            settings.smtp_timeout_s,
            settings.from_address,
        )

    @property
    def domain(self) -> str:
        """The sender's domain, for the Message-ID."""
        return parseaddr(self.from_address)[1].rpartition("@")[2] or "cep-bus.invalid"


@dataclass(frozen=True)
class Backoff:
    first_s: float = 5.0
    max_s: float = 3600.0

    def delay_s(self, attempts: int) -> float:
        """The delay before the next try after `attempts` failed ones (1, 2, ...): doubled each time."""
        return min(self.max_s, self.first_s * 2.0 ** min(max(attempts - 1, 0), 32))


def open_smtp(config: SmtpConfig) -> smtplib.SMTP:
    """One SMTP session: EHLO, STARTTLS (certificate verified) when asked, then AUTH when a user is set."""
    smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
    try:
        smtp.ehlo()
        if config.starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if config.username:
            smtp.login(config.username, config.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def failure_reason(exc: BaseException) -> str:
    """A short, stable reason (a metrics label, the `last_error` kept): never the server's text, which
    may quote an address."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "authentication"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return "not_supported"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return "refused" if codes and all(500 <= code < 600 for code in codes) else "temporary"
    if isinstance(exc, smtplib.SMTPResponseException):
        return "refused" if 500 <= exc.smtp_code < 600 else "temporary"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "connection"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, smtplib.SMTPException):  # before OSError, which it subclasses
        return "smtp"
    return "connection"


def message_of(email: PendingEmail, config: SmtpConfig) -> EmailMessage:
    """The MIME message: plain text and HTML alternatives, its Message-ID derived from the email id (a
    re-send after a crash is recognisably the same message)."""
    message = EmailMessage()
    message["From"] = config.from_address
    message["To"] = email.address
    message["Subject"] = email.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<{email.email_id}@{config.domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message[KIND_HEADER] = email.kind
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


@dataclass
class SendReport:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)


@dataclass
class MailSender:
    store: MailerStore
    config: SmtpConfig
    backoff: Backoff = field(default_factory=Backoff)
    batch_max: int = 50
    budget_s: float = 5.0
    clock_ms: Callable[[], int] = field(default=now_ms)
    connect: Callable[[SmtpConfig], smtplib.SMTP] = field(default=open_smtp)
    _pruned_at_ms: int = 0

    def tick(self) -> Sequence[Outgoing]:
        """The send timer's tick: emails go out by SMTP, no event goes on Kafka."""
        self.send_due()
        now = self.clock_ms()
        if now - self._pruned_at_ms >= PRUNE_EVERY_MS:
            self.store.prune(now)
            self._pruned_at_ms = now
        return []

    def send_due(self) -> SendReport:
        report = SendReport()
        due = self.store.claim_due(self.clock_ms(), self.batch_max, LEASE_MS)
        if due:
            self._send(due, report)
        self.observe()
        return report

    def _send(self, due: list[PendingEmail], report: SendReport) -> None:
        started = time.monotonic()
        try:
            smtp = self.connect(self.config)
        except (OSError, smtplib.SMTPException) as exc:  # the server away: every due email waits
            reason = failure_reason(exc)
            log.warning("smtp_unavailable", reason=reason, emails=len(due), error=type(exc).__name__)
            for email in due:
                self._failed(email, reason, report)
            return
        tried = 0
        try:
            for index, email in enumerate(due):
                if index and time.monotonic() - started > self.budget_s:
                    break
                tried = index + 1
                try:
                    smtp.send_message(message_of(email, self.config))
                except smtplib.SMTPServerDisconnected as exc:  # the rest waits for the next look
                    self._failed(email, failure_reason(exc), report)
                    break
                except smtplib.SMTPException as exc:  # this email refused (an OSError too): others may go
                    self._failed(email, failure_reason(exc), report)
                    continue
                except OSError as exc:  # the connection lost: the rest waits for the next look
                    self._failed(email, failure_reason(exc), report)
                    break
                self.store.mark_sent(email.email_id, self.clock_ms())
                EMAILS_SENT.labels(email.kind).inc()
                report.sent.append(email.email_id)
                log.info(
                    "email_sent",
                    email_id=email.email_id,
                    kind=email.kind,
                    organisation=email.org_id,
                    attempts=email.attempts + 1,
                )
        finally:
            untried = [email.email_id for email in due[tried:]]
            if untried:
                self.store.release(untried, self.clock_ms())
                report.released += untried
            _close(smtp)

    def _failed(self, email: PendingEmail, reason: str, report: SendReport) -> None:
        attempts = email.attempts + 1
        delay_s = self.backoff.delay_s(attempts)
        self.store.mark_failed(email.email_id, self.clock_ms() + int(delay_s * 1000), reason)
        SEND_FAILURES.labels(email.kind, reason).inc()
        report.failed.append(email.email_id)
        log.warning(
            "email_not_sent",
            email_id=email.email_id,
            kind=email.kind,
            organisation=email.org_id,
            reason=reason,
            attempts=attempts,
            retry_in_s=delay_s,
        )

    def observe(self) -> None:
        """The pending gauges, from the store (every replica reports the same outbox)."""
        count, oldest = self.store.pending()
        EMAILS_PENDING.set(count)
        OLDEST_PENDING_SECONDS.set(0.0 if oldest is None else max(0.0, (self.clock_ms() - oldest) / 1000))


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


__all__ = [
    "KIND_HEADER",
    "Backoff",
    "MailSender",
    "SendReport",
    "SmtpConfig",
    "failure_reason",
    "message_of",
    "open_smtp",
]
