"""Stand-ins for the clock and the Kafka producer, so domain code and SDKs run without a broker."""

from __future__ import annotations

from datetime import datetime
from typing import Any


class MovableClock:
    """A clock the test sets by hand (`clock.now = ...`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordingProducer:
    """Stands in for KafkaProducer: records what would have been sent, acknowledges at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.headers: list[dict[str, bytes]] = []  # each sent message's headers, in order

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"", headers: Any = None) -> Any:
        self.sent.append((topic, value))
        self.headers.append(dict(headers or []))
        return self

    def get(self, timeout: float | None = None) -> str:
        return "acknowledged"

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
