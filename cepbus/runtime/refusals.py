"""What the broker refuses for good: a record no retry can deliver (too large, invalid), told apart from
an outage, which is retried until it ends.

Both Kafka clients report the protocol's error code (librdkafka's `KafkaError.code()`, aiokafka's
`errno`), and librdkafka uses the same code when it refuses a record locally (larger than
`message.max.bytes`), so one table serves every driver. A refused output is replaced by a dead letter
(`EventProcessor.undeliverable`) and its route goes on; anything else fails the send, which is retried.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Kafka protocol error codes that refuse the record itself, whatever the state of the cluster.
PERMANENT_REFUSALS: dict[int, str] = {
    2: "CORRUPT_MESSAGE",
    10: "MESSAGE_TOO_LARGE",
    18: "RECORD_LIST_TOO_LARGE",
    87: "INVALID_RECORD",
}


def permanent_refusal(code: int | None, text: str) -> str | None:
    """`NAME: text` when `code` refuses the record for good, else None (retry)."""
    name = PERMANENT_REFUSALS.get(code) if code is not None else None
    return None if name is None else f"{name}: {text}"[:500]


@dataclass(frozen=True)
class Undeliverable:
    """An output the broker refused for good, with what its dead letter keeps: the single-object
    statement as signed, the key and headers it was sent with, and the broker's reason."""

    event_id: str
    event_type: str
    topic: str
    key: bytes | None
    statement: bytes
    headers: tuple[tuple[str, bytes], ...]
    reason: str


__all__ = ["PERMANENT_REFUSALS", "Undeliverable", "permanent_refusal"]
