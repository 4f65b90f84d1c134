"""The mailer's metrics: emails decided, sent and failed by kind, what waits and for how long, and the
organisations it could not write to (no address). The alert CepbusMailerEmailsPending
(deploy/prometheus/cepbus-rules.yml) watches the age of the oldest email not sent."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EMAILS_QUEUED = Counter(
    "cepbus_mailer_emails_queued_total", "Emails decided and stored in the mail outbox", ["kind"]
)
EMAILS_SENT = Counter("cepbus_mailer_emails_sent_total", "Emails the SMTP server accepted", ["kind"])
SEND_FAILURES = Counter(
    "cepbus_mailer_send_failures_total",
    "Attempts to send an email that failed (kept, retried with backoff)",
    ["kind", "reason"],
)
EMAILS_PENDING = Gauge("cepbus_mailer_emails_pending", "Emails in the mail outbox not sent yet")
OLDEST_PENDING_SECONDS = Gauge(
    "cepbus_mailer_oldest_pending_seconds", "Age of the oldest email not sent yet (0: none waits)"
)
UNADDRESSED = Counter(
    "cepbus_mailer_unaddressed_total",
    "Emails not decided because the address book has no address for the organisation",
    ["kind", "organisation"],
)

__all__ = [
    "EMAILS_PENDING",
    "EMAILS_QUEUED",
    "EMAILS_SENT",
    "OLDEST_PENDING_SECONDS",
    "SEND_FAILURES",
    "UNADDRESSED",
]
