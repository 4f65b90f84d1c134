"""Prometheus metrics shared by every service (`cepbus_` prefix, base units, bounded labels)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
PROCESSING_SECONDS = Histogram(
    "cepbus_processing_seconds",
    "Time from consuming a message to handing its outputs to the producer",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
