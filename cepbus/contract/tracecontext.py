"""W3C Trace Context (https://www.w3.org/TR/trace-context/) in Kafka headers: the `traceparent` header.

`traceparent: 00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>`. The publishing SDK starts a
trace (or continues the caller's); every service continues the trace of the event it handles: each
event it emits carries the same trace id and a span id of its own, so a tracing backend links the
intake, the router's decision, the notice and the ledger's entry of one person's path. The span id
of an emitted event is taken from its event id (8 of its pseudo-random bytes), so a service that
re-derives the event after a crash emits the same span, as it emits the same event id.

Hand-written rather than OpenTelemetry's propagator: the bus exports no spans, and the header is
parsed on every message of the hot path; tests check the two agree on the header's form.
"""

from __future__ import annotations

import contextvars
import re
import secrets
import uuid
from dataclasses import dataclass

from cepbus.contract.headers import TRACEPARENT_HEADER

_HEADER = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str  # 32 lowercase hex, not all zeros
    span_id: str  # 16 lowercase hex, not all zeros: the span of the event that carried it
    flags: str = "01"  # sampled

    @property
    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self, event_id: uuid.UUID) -> TraceContext:
        """The context an event derived in this trace carries: same trace, its own span."""
        span = event_id.bytes[8:].hex()
        return TraceContext(self.trace_id, span if span != _ZERO_SPAN else "0" * 15 + "1", self.flags)


def parse(header: str | None) -> TraceContext | None:
    """A valid `traceparent`, or None (absent or malformed: the receiver then starts afresh, as the
    specification says). Versions above 00 are read by their 00 prefix; version ff is invalid."""
    if not header:
        return None
    match = _HEADER.match(header.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, flags)


def new_trace(event_id: uuid.UUID | None = None) -> TraceContext:
    """A new trace: a random trace id, the span of `event_id` (or a random one)."""
    root = TraceContext(secrets.token_hex(16), secrets.token_hex(8))
    return root.child(event_id) if event_id is not None else root


#: The trace context of the event being handled in this thread or task, for the events it derives.
CURRENT: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("cepbus_trace", default=None)


def current() -> TraceContext | None:
    return CURRENT.get()


__all__ = ["CURRENT", "TRACEPARENT_HEADER", "TraceContext", "current", "new_trace", "parse"]
