"""The inbox's metrics (bounded labels: outcomes and statuses are closed lists)."""

from __future__ import annotations

from prometheus_client import Counter

LOGINS = Counter(
    "cepbus_inbox_logins_total",
    "Log-in attempts on the partner inbox (accepted, refused, bad form token, read side unavailable)",
    ["outcome"],
)
UPDATES = Counter(
    "cepbus_inbox_updates_total",
    "Signed status updates the inbox published, or refused before publishing (with the router's reason "
    "code, or bad_signature, publish_failed)",
    ["status", "outcome"],
)
READ_SIDE_ERRORS = Counter(
    "cepbus_inbox_read_side_errors_total", "Read side requests that failed (unreachable, 5xx, not JSON)"
)
