"""Prometheus metrics every service has (`cepbus_` prefix, base units, `_total` for counters, bounded
labels only: service, topic, partition, organisation id from the directory, reason). Each service
declares its domain metrics in its own `metrics.py`; every labelled metric is exposed with its
`# HELP`/`# TYPE` lines even before its first sample, so dashboards and alerts have stable names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("cepbus_events_in_total", "Messages consumed", ["service", "topic"])
EVENTS_OUT = Counter("cepbus_events_out_total", "Events produced", ["service", "topic"])
PROCESSING_ERRORS = Counter(
    "cepbus_processing_errors_total", "Messages a service could not process", ["service", "reason"]
)
DEAD_LETTERS = Counter(
    "cepbus_dead_letters_total", "Messages sent to the dead-letter topic", ["service", "reason"]
)
DUPLICATES = Counter(
    "cepbus_duplicates_total", "Redelivered events recognised by their event id", ["service"]
)
BATCHES_RETRIED = Counter(
    "cepbus_batches_retried_total",
    "Batches held back and retried while a database (or a batch handler) was unavailable (never acked)",
    ["service", "route"],
)
ROUTE_BLOCKED = Gauge(
    "cepbus_route_blocked",
    "1 while a route's batch is held back (its database or the broker unavailable), partitions paused",
    ["service", "route"],
)
PROCESSING_SECONDS = Histogram(
    "cepbus_processing_seconds",
    "Time from consuming a message to handing its outputs to the producer",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
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
