"""The ledger's metrics."""

from __future__ import annotations

from prometheus_client import Counter

LEDGER_APPENDED = Counter("cepbus_ledger_entries_appended_total", "Entries appended to the ledger")
LEDGER_REFUSED = Counter(
    "cepbus_ledger_refused_total",
    "Events the ledger refused to append (wrong type for the topic, producer not allowed, claim mismatch)",
    ["reason"],
)
LEDGER_ID_COLLISIONS = Counter(
    "cepbus_ledger_id_collisions_total",
    "Events whose id is already in the ledger with other content: refused, never taken for a duplicate",
)
