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
    "code, the signature's: malformed_signature, bad_signature, unknown_key, key_not_valid, misattributed; "
    "or publish_failed)",
    ["status", "outcome"],
)
READ_SIDE_ERRORS = Counter(
    "cepbus_inbox_read_side_errors_total", "Read side requests that failed (unreachable, 5xx, not JSON)"
)
LOGIN_REFUSED = Counter(
    "cepbus_inbox_login_refused_total",
    "Log-in attempts refused before their token was checked: too many failures of the address or the "
    "organisation (throttled: too soon after the last; locked: for the cool-down)",
    ["reason"],
)
