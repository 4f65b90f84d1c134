"""Operational metrics: the questions ops teams and the regulator ask of a running bus.

Conventions: `cepbus_` prefix, base units (seconds, messages), `_total` for counters, bounded labels
only (service, topic, partition, region, operator kind, organisation id from the ~90-entry
directory, reason, status). Metrics that later work increments (referral lifecycle, regulation
breaches) are declared here so dashboards and alerts have stable names from day one; every labelled
metric is exposed with its `# HELP`/`# TYPE` lines even before its first sample.
"""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

#: A notice is "on time" when issued within this many seconds of the intake (the dashboard's and
#: the alerts' threshold; it is also a bucket boundary of the histogram below).
NOTICE_ON_TIME_S = 60.0

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

CONSUMER_LAG_MESSAGES = Gauge(
    "cepbus_consumer_lag_messages",
    "Messages not yet committed by the service's consumer group (high-water mark - committed offset)",
    ["service", "topic", "partition"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "cepbus_consumer_lag_seconds",
    "Estimated age of the oldest message not yet committed (0 when caught up)",
    ["service", "topic", "partition"],
)
LAG_SAMPLE_ERRORS = Gauge(
    "cepbus_consumer_lag_sample_failures",
    "Consecutive failed attempts to read committed offsets and high-water marks",
    ["service"],
)

OPERATOR_LAST_EVENT_TIMESTAMP = Gauge(
    "cepbus_operator_last_event_timestamp_seconds",
    "Unix time of the last event received from each organisation of the directory"
    " (the service's start time until a first event arrives)",
    ["service", "organisation", "operator_kind", "region"],
)
OPERATOR_SILENT_SECONDS = Gauge(
    "cepbus_operator_silent_seconds",
    "Seconds since the last event from each organisation of the directory"
    " (at least the service's uptime when none arrived since it started)",
    ["service", "organisation", "operator_kind", "region"],
)

SERVICE_READY = Gauge(
    "cepbus_service_ready", "1 when the service's consumer is started and assigned", ["service"]
)
