"""The ledger's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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

LEDGER_CHECKPOINTS_REFUSED = Counter(
    "cepbus_ledger_checkpoints_refused_total",
    "Checkpoints the ledger refused to sign (the tree does not extend the last signed one, or the key "
    "is not the one that signed it)",
)
LEDGER_CHECKPOINT_SIGNED_AT = Gauge(
    "cepbus_ledger_checkpoint_signed_timestamp_seconds",
    "When the latest checkpoint was signed (Unix seconds); 0 before the first",
)
LEDGER_UNSIGNED_ENTRIES = Gauge(
    "cepbus_ledger_unsigned_entries",
    "Entries appended since the latest signed checkpoint: what an auditor cannot yet verify",
)
