"""Domain metrics (what ops and the regulator ask about), by region and operator kind."""

from __future__ import annotations

from prometheus_client import Counter

INTAKE_DECISIONS = Counter(
    "cepbus_intake_decisions_total", "Regulation decisions on intakes", ["region", "operator_kind", "status"]
)
NOTICES_REQUESTED = Counter("cepbus_notices_requested_total", "Informed-choice notices due", ["region"])
NOTICES_ISSUED = Counter(
    "cepbus_notices_issued_total", "Informed-choice notices issued", ["region", "channel"]
)
REFERRALS_ROUTED = Counter(
    "cepbus_referrals_routed_total", "Referrals delivered to a recipient inbox", ["region", "recipient_kind"]
)
LEDGER_APPENDED = Counter("cepbus_ledger_entries_appended_total", "Entries appended to the ledger")
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
