"""The regulation's thresholds that more than one party measures against: defined once, so that the
notifier's dashboard and alerts, and the audit report computed from the ledger, call the same notice
"on time"."""

from __future__ import annotations

#: A notice is on time when issued within this many seconds of its intake, on the bus's clock.
NOTICE_ON_TIME_S = 60.0

__all__ = ["NOTICE_ON_TIME_S"]
