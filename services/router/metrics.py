"""The router's metrics: regulation decisions, choices, breaches, and the referral lifecycle."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INTAKE_DECISIONS = Counter(
    "cepbus_intake_decisions_total", "Regulation decisions on intakes", ["region", "operator_kind", "status"]
)
NOTICES_REQUESTED = Counter("cepbus_notices_requested_total", "Informed-choice notices due", ["region"])
REFERRALS_ROUTED = Counter(
    "cepbus_referrals_routed_total", "Referrals delivered to a recipient inbox", ["region", "recipient_kind"]
)
REGULATION_BREACHES = Counter(
    "cepbus_regulation_breaches_total",
    "Level-2 starts without informed choice (no notice issued, or no choice made)",
    ["region", "operator_kind", "breach"],
)
CHOICES_RECORDED = Counter(
    "cepbus_choices_recorded_total", "Choices recorded after a notice", ["region", "choice"]
)
CHOICE_REMINDERS = Counter(
    "cepbus_choice_reminders_total", "Reminders: no choice recorded within the delay", ["region"]
)

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
REFERRAL_REMINDERS = Counter(
    "cepbus_referral_reminders_total",
    "Reminders sent to a referral's recipient (before a deadline, or while unanswered)",
    ["recipient_kind", "reminder"],
)
REFERRALS_EXPIRED = Counter(
    "cepbus_referrals_expired_total",
    "Referrals closed by the bus after N days unanswered",
    ["recipient_kind"],
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
