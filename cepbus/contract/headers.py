"""Kafka header names every producer and consumer of the bus agrees on.

Headers carry what a consumer may want before decoding the value: the correlation id of the person's
journey (for logs), the event type (for routing tools that do not speak Avro), the W3C trace context
(`traceparent`, for tracing tools; cepbus.contract.tracecontext), and the author's signature of the
event (`cepbus-signature`, cepbus.contract.statements), which every consumer verifies.
"""

from __future__ import annotations

CORRELATION_HEADER = "cepbus-correlation-id"
EVENT_TYPE_HEADER = "cepbus-event-type"
# Set by `cep-bus deadletters replay` on the re-published original: the dead letter it replays, so a
# replay that fails again is linked to the first failure.
REPLAY_OF_HEADER = "cepbus-replay-of"
# W3C Trace Context `00-<trace id>-<span id>-<flags>`, continued by every service (tracecontext.py).
TRACEPARENT_HEADER = "traceparent"
# The author's signature of the event (cepbus.contract.statements): required on every event.
SIGNATURE_HEADER = "cepbus-signature"

__all__ = [
    "CORRELATION_HEADER",
    "EVENT_TYPE_HEADER",
    "REPLAY_OF_HEADER",
    "SIGNATURE_HEADER",
    "TRACEPARENT_HEADER",
]
