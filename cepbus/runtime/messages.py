"""What a handler receives and returns, with no broker in sight: a consumed message, an event to send,
and a refusal. Services hand the runtime plain functions `event -> outputs` built on these types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TypeVar

from cepbus.contract import tracecontext
from cepbus.contract.headers import (
    CORRELATION_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TRACEPARENT_HEADER,
)
from cepbus.contract.models import Event
from cepbus.contract.tracecontext import TraceContext
from cepbus.reference.authorship import Author


@dataclass(frozen=True)
class Outgoing:
    """An event to send to `topic`, keyed and headed as the contract says. `trace` is the context of
    the event it was derived from: by default the one being handled when it was built. `signature`: the
    author's own `cepbus-signature` header, for an event passed on unchanged (an inbox delivery,
    `cepbus.runtime.processing.forwarded`); without it the sending service signs the event."""

    topic: str
    event: Event
    trace: TraceContext | None = field(default_factory=tracecontext.current)
    signature: bytes | None = None

    def key(self) -> bytes | None:
        return self.event.partition_key()

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            (CORRELATION_HEADER, self.event.envelope.correlation_id.encode()),
            (EVENT_TYPE_HEADER, self.event.avro_name.encode()),
        ]
        if self.trace is not None:  # the same trace, a span of this event's own
            headers.append(
                (TRACEPARENT_HEADER, self.trace.child(self.event.envelope.event_id).header.encode())
            )
        if self.signature is not None:
            headers.append((SIGNATURE_HEADER, self.signature))
        return headers


@dataclass(frozen=True)
class Incoming:
    """A consumed message, as the broker delivered it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def raw_header(self, name: str) -> bytes | None:
        """A header's value as bytes, or None when absent."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header(self, name: str) -> str | None:
        """A header's value as text, or None when absent or not UTF-8."""
        for key, value in self.headers:
            if key == name:
                try:
                    return value.decode()
                except UnicodeDecodeError:
                    return None
        return None


@dataclass(frozen=True)
class Received:
    """A decoded event with the message it came in and its verified author (a batch handler needs them
    all: the ledger keeps the exact bytes, the topic and the signature)."""

    message: Incoming
    event: Event
    author: Author | None = None  # None only where the runtime verifies no authorship (unit tests)


@dataclass(frozen=True)
class Refusal:
    """A batch handler's refusal of one message: the runtime turns it into a dead letter with `reason`."""

    message: Incoming
    reason: str
    detail: str


class Rejected(Exception):
    """A well-formed event the domain refuses; it goes to the dead-letter topic with `reason`."""

    def __init__(self, reason: str, detail: str, also: Sequence[Outgoing] = ()) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.also = tuple(also)  # sent before the dead letter, e.g. the record of the refusal


E = TypeVar("E", bound=Event)
#: A handler: one event in, the events it decides out. Raises `Rejected` to refuse the event.
Handler = Callable[[E], Sequence[Outgoing]]
#: A batch handler: every decoded event of a batch in order; the events to send and the refusals.
BatchHandler = Callable[[Sequence[Received]], Sequence[Outgoing | Refusal]]
#: Opens a store's transaction; the runtime runs a whole batch inside it.
Transaction = Callable[[], AbstractContextManager[None]]

__all__ = [
    "BatchHandler",
    "Handler",
    "Incoming",
    "Outgoing",
    "Received",
    "Refusal",
    "Rejected",
    "Transaction",
]
