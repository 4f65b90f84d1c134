"""W3C `traceparent` on the bus: parsed as the specification says, started by the publishing SDK,
continued by the runtime into every event a handler derives, and bound in the log lines."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from cepbus.contract import codec, tracecontext
from cepbus.contract.headers import TRACEPARENT_HEADER
from cepbus.contract.models import IntakeRegistered
from cepbus.contract.topics import DEAD_LETTER, INTAKE_REGISTERED, NOTICE_ISSUED
from cepbus.runtime.logs import add_trace_context, configure_logging, get_logger
from cepbus.runtime.messages import Incoming, Outgoing
from cepbus.runtime.processing import EventProcessor
from cepbus.runtime.settings import ObservabilitySettings
from cepbus.sdk.publisher import Publisher
from tests.support.factories import intake
from tests.support.fakes import RecordingProducer

W3C_EXAMPLE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # the specification's example

MALFORMED = [
    "",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has no more fields
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # a short trace id
]


def otel_reads(header: str) -> tuple[str, str] | None:
    """What OpenTelemetry's own W3C propagator makes of the header: the second implementation."""
    context = TraceContextTextMapPropagator().extract({"traceparent": header})
    span = trace.get_current_span(context).get_span_context()
    if not span.is_valid:
        return None
    return format(span.trace_id, "032x"), format(span.span_id, "016x")


def test_the_specification_example_and_a_future_version_parse() -> None:
    parsed = tracecontext.parse(W3C_EXAMPLE)
    assert parsed is not None and parsed.header == W3C_EXAMPLE
    assert (parsed.trace_id, parsed.span_id) == otel_reads(W3C_EXAMPLE)
    future = tracecontext.parse(
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-adds"
    )
    assert future is not None and future.header == W3C_EXAMPLE  # read by its version-00 prefix


@pytest.mark.parametrize("header", MALFORMED)
def test_malformed_headers_are_ignored_as_opentelemetry_ignores_them(header: str) -> None:
    assert tracecontext.parse(header) is None
    assert otel_reads(header) is None


def test_what_the_bus_writes_opentelemetry_reads_back() -> None:
    for _ in range(50):
        context = tracecontext.new_trace(uuid.uuid4())
        assert otel_reads(context.header) == (context.trace_id, context.span_id)
        child = context.child(uuid.uuid4())
        assert (
            otel_reads(child.header) == (context.trace_id, child.span_id) and child.span_id != context.span_id
        )


def test_the_publisher_starts_a_trace_or_continues_the_callers() -> None:
    producer = RecordingProducer()
    publisher = Publisher(producer=producer)
    first, second = intake(), intake()
    publisher.publish(first)
    publisher.publish(second, traceparent=W3C_EXAMPLE)
    started = tracecontext.parse(producer.headers[0][TRACEPARENT_HEADER].decode())
    continued = tracecontext.parse(producer.headers[1][TRACEPARENT_HEADER].decode())
    assert started is not None and continued is not None
    assert started.span_id == first.event_id.bytes[8:].hex()  # the event's own span
    assert continued.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert continued.span_id == second.event_id.bytes[8:].hex() != "00f067aa0ba902b7"
    publisher.publish(intake(), traceparent="garbage")  # a malformed one starts afresh, never fails
    assert tracecontext.parse(producer.headers[2][TRACEPARENT_HEADER].decode()) is not None


def handled(value: bytes, headers: tuple[tuple[str, bytes], ...]) -> list[Outgoing]:
    message = Incoming(INTAKE_REGISTERED.name, 0, 1, b"p", value, headers)
    return EventProcessor("router", "cep-bus/router").handle(
        message, IntakeRegistered, lambda e: [Outgoing(NOTICE_ISSUED.name, intake())]
    )


def header_of(out: Outgoing) -> tracecontext.TraceContext | None:
    return tracecontext.parse(dict(out.headers()).get(TRACEPARENT_HEADER, b"").decode())


def test_every_derived_event_continues_the_trace_it_came_in() -> None:
    [out] = handled(codec.encode(intake()), ((TRACEPARENT_HEADER, W3C_EXAMPLE.encode()),))
    context = header_of(out)
    assert context is not None and context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert context.span_id == out.event.event_id.bytes[8:].hex()  # the same on a replay: same event id
    assert tracecontext.current() is None  # nothing leaks to the next message


def test_an_event_without_a_trace_starts_one_and_dead_letters_keep_theirs() -> None:
    [out] = handled(codec.encode(intake()), ())
    assert header_of(out) is not None
    [letter] = handled(b"garbage", ((TRACEPARENT_HEADER, W3C_EXAMPLE.encode()),))
    assert letter.topic == DEAD_LETTER.name
    context = header_of(letter)
    assert context is not None and context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_log_lines_name_the_trace() -> None:
    """What a handler logs carries the bound correlation and event ids (merged into every line by
    configure_logging, as tests/unit/runtime/test_logs.py shows) and the trace, added by the
    add_trace_context processor of that same chain."""
    seen: list[dict[str, object]] = []

    def handler(event: IntakeRegistered) -> list[Outgoing]:
        seen.append(add_trace_context(None, "info", dict(structlog.contextvars.get_contextvars())))
        return []

    headers = ((TRACEPARENT_HEADER, W3C_EXAMPLE.encode()),)
    message = Incoming(INTAKE_REGISTERED.name, 0, 1, b"p", codec.encode(intake()), headers)
    EventProcessor("router", "cep-bus/router").handle(message, IntakeRegistered, handler)
    [line] = seen
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and line["span_id"] == "00f067aa0ba902b7"
    assert line["correlation_id"] and line["event_id"]
    assert add_trace_context(None, "info", {}) == {}  # after the event, nothing is added


def test_a_configured_logger_writes_the_trace_in_its_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("router", ObservabilitySettings(log_format="json"))
    try:
        token = tracecontext.CURRENT.set(tracecontext.parse(W3C_EXAMPLE))
        try:
            get_logger().warning("deciding")
        finally:
            tracecontext.CURRENT.reset(token)
        [line] = [json.loads(text) for text in capsys.readouterr().err.splitlines() if text.strip()]
    finally:
        logging.getLogger().handlers = []
        structlog.reset_defaults()
    assert line["event"] == "deciding" and line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["span_id"] == "00f067aa0ba902b7" and line["service"] == "router"
