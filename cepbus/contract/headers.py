"""Kafka header names every producer and consumer of the bus agrees on.

Headers carry what a consumer may want before decoding the value: the correlation id of the person's
journey (for logs and traces) and the event type (for routing tools that do not speak Avro).
"""

from __future__ import annotations

CORRELATION_HEADER = "cepbus-correlation-id"
EVENT_TYPE_HEADER = "cepbus-event-type"
# Set by `cep-bus deadletters replay` on the re-published original: the dead letter it replays, so a
# replay that fails again is linked to the first failure.
REPLAY_OF_HEADER = "cepbus-replay-of"

__all__ = ["CORRELATION_HEADER", "EVENT_TYPE_HEADER", "REPLAY_OF_HEADER"]
