"""The notifier's metrics: notices issued and how long after the intake."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from cepbus.contract.regulation import NOTICE_ON_TIME_S

NOTICES_ISSUED = Counter(
    "cepbus_notices_issued_total", "Informed-choice notices issued", ["region", "channel"]
)

# A notice is "on time" within NOTICE_ON_TIME_S of its intake (the contract's threshold, which the
# dashboard, the alerts and the audit report share): a bucket boundary of the histogram below.

INTAKE_TO_NOTICE_SECONDS = Histogram(
    "cepbus_intake_to_notice_seconds",
    "Delay from an intake (its occurred_at) to the informed-choice notice issued for it",
    ["region"],
    buckets=(
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
        30.0,
        NOTICE_ON_TIME_S,
        300.0,
        900.0,
        3600.0,
        86400.0,
    ),
)
