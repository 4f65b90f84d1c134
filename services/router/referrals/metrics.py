"""Referral lifecycle metrics (bounded labels: statuses, reason codes, regions, organisation kinds)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REFERRALS_TRACKED = Counter(
    "cepbus_referrals_tracked_total",
    "Referrals whose lifecycle the router follows",
    ["region", "recipient_kind"],
)
STATUS_APPLIED = Counter(
    "cepbus_referral_status_changes_total",
    "Referral status transitions accepted, by status reached",
    ["region", "recipient_kind", "status"],
)
UPDATES_REJECTED = Counter(
    "cepbus_referral_updates_rejected_total", "Status updates refused (state unchanged)", ["reason"]
)
DEADLINE_BREACHES = Counter(
    "cepbus_referral_deadline_breaches_total",
    "Referral steps not taken within their deadline",
    ["region", "recipient_kind", "deadline"],
)
REGULATION_ALERTS = Counter("cepbus_referral_alerts_total", "Referral drift alerts", ["alert"])
APPOINTMENT_DELAY = Histogram(
    "cepbus_referral_appointment_delay_seconds",
    "Délai de rendez-vous: from the referral request to the first appointment held",
    ["region", "recipient_kind"],
    buckets=(
        60,
        3600,
        86400,
        2 * 86400,
        5 * 86400,
        10 * 86400,
        15 * 86400,
        21 * 86400,
        30 * 86400,
        60 * 86400,
    ),
)
