"""The publishing SDK for operator information systems (kafka-python).

`Publisher.publish` validates with pydantic, encodes as Avro single-object, sends with acks=all and
returns once the broker has acknowledged. Invalid input (a broken contract, a region or
département that is not on the map, or an encoding bigger than `BrokerSettings.max_message_bytes`)
raises `InvalidEvent` and is never sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import pydantic
from kafka import KafkaProducer
from kafka.producer.future import RecordMetadata
from prometheus_client import Counter

from cepbus.contract import codec, tracecontext
from cepbus.contract.headers import CORRELATION_HEADER, EVENT_TYPE_HEADER, TRACEPARENT_HEADER
from cepbus.contract.models import Event
from cepbus.contract.topics import topic_for
from cepbus.reference import load_reference
from cepbus.reference.checks import reference_problems
from cepbus.runtime.client_config import kafka_python_security
from cepbus.runtime.framing import Framing
from cepbus.runtime.instruments import KafkaRequests, NotRecorded
from cepbus.runtime.settings import BrokerSettings
from cepbus.runtime.traffic import principal_of_org

PUBLISH_REFUSED = Counter(
    "cepbus_publish_refused_total",
    "Events the Publisher refused before sending",
    ["event_type", "reason"],
)


class InvalidEvent(ValueError):
    """The event breaks the contract, contradicts the reference data or is too big; nothing was sent.
    `reason` is short and stable (`invalid_contract`, `reference_data`, `too_large`)."""

    def __init__(self, message: str, reason: str = "invalid_contract") -> None:
        super().__init__(message)
        self.reason = reason


def trace_header(event: Event, traceparent: str | None) -> str:
    """The `traceparent` an event is published with: a span of its own in the caller's trace, or in a
    new trace when the caller has none (or a malformed one)."""
    parent = tracecontext.parse(traceparent)
    if parent is None:
        return tracecontext.new_trace(event.envelope.event_id).header
    return parent.child(event.envelope.event_id).header


class Publisher:
    def __init__(
        self,
        settings: BrokerSettings | None = None,
        *,
        client_id: str = "cepbus-publisher",
        producer: Any | None = None,  # a KafkaProducer-like object; tests pass a recording fake
        principal: str | None = None,
        requests: KafkaRequests | None = None,
    ) -> None:
        """`principal`: the KafkaUser this client authenticates as, when it is not the events'
        producer (the partner inbox publishes partners' signed updates as `cepbus-inbox`); None: the
        producer organisation's own (`operator-<org>`, `partner-<org>`). Only `requests`, a record of
        the Kafka requests made (the ACL test attaches one, `cepbus.runtime.traffic.TrafficLog`), uses
        it: the broker knows the principal from the certificate."""
        self.settings = settings or BrokerSettings()
        self.principal = principal
        self.requests: KafkaRequests = requests or NotRecorded()
        self.wire = Framing.from_settings(self.settings)  # CEPBUS_WIRE_FORMAT, CEPBUS_SCHEMA_REGISTRY_URL
        self._producer = producer or KafkaProducer(
            bootstrap_servers=self.settings.bootstrap_list,
            client_id=client_id,
            acks="all",
            linger_ms=self.settings.producer_linger_ms,
            retries=5,
            max_request_size=self.settings.max_message_bytes + 4096,  # the event plus its headers
            max_in_flight_requests_per_connection=1,  # retries must not reorder one person's events
            request_timeout_ms=int(self.settings.request_timeout_s * 1000),
            **kafka_python_security(self.settings),
        )

    @staticmethod
    def validate(event: Event | tuple[type[Event], Mapping[str, Any]]) -> Event:
        """A model instance is re-validated (it may have been built with model_construct), then
        checked against the reference data."""
        model, data = (type(event), event.model_dump(warnings=False)) if isinstance(event, Event) else event
        try:
            valid = model.model_validate(data)
        except pydantic.ValidationError as exc:
            PUBLISH_REFUSED.labels(model.__name__, "invalid_contract").inc()
            raise InvalidEvent(f"{model.__name__} is invalid: {exc}") from exc
        problems = reference_problems(valid, load_reference())
        if problems:
            PUBLISH_REFUSED.labels(model.__name__, "reference_data").inc()
            raise InvalidEvent(f"{model.__name__} is invalid: {'; '.join(problems)}", "reference_data")
        return valid

    def _encode(self, event: Event) -> bytes:
        value = codec.encode(event)
        if len(value) > self.settings.max_message_bytes:
            PUBLISH_REFUSED.labels(type(event).__name__, "too_large").inc()
            raise InvalidEvent(
                f"{type(event).__name__} {event.envelope.event_id} encodes to {len(value)} bytes, over the"
                f" bus limit of {self.settings.max_message_bytes} (CEPBUS_MAX_MESSAGE_BYTES)",
                "too_large",
            )
        return value

    def _send(self, event: Event, topic: str | None, value: bytes, traceparent: str | None) -> Any:
        topic = topic or topic_for(event).name
        principal = self.principal or principal_of_org(event.envelope.producer_org_id)
        self.requests.record(principal, "Write", "topic", topic)  # as the KafkaUser it authenticates as
        return self._producer.send(
            topic,
            key=event.partition_key(),
            value=self.wire.frame(value, topic),
            headers=[
                (CORRELATION_HEADER, event.envelope.correlation_id.encode()),
                (EVENT_TYPE_HEADER, event.avro_name.encode()),
                (TRACEPARENT_HEADER, trace_header(event, traceparent).encode()),
            ],
        )

    def publish(
        self,
        event: Event | tuple[type[Event], Mapping[str, Any]],
        *,
        topic: str | None = None,
        traceparent: str | None = None,
    ) -> RecordMetadata:
        """Validate, encode, send; return when the broker has acknowledged (acks=all). `traceparent`:
        the caller's W3C trace context, continued; without one a new trace starts."""
        valid = self.validate(event)
        value = self._encode(valid)
        return self._send(valid, topic, value, traceparent).get(timeout=self.settings.request_timeout_s)

    def publish_many(
        self, events: Iterable[Event], *, topic: str | None = None, traceparent: str | None = None
    ) -> list[RecordMetadata]:
        """Validate and encode all first (nothing is sent if one is invalid), then send and wait for
        every ack."""
        valid = [self.validate(event) for event in events]
        encoded = [self._encode(event) for event in valid]
        futures = [
            self._send(event, topic, value, traceparent) for event, value in zip(valid, encoded, strict=True)
        ]
        self._producer.flush()
        return [future.get(timeout=self.settings.request_timeout_s) for future in futures]

    def close(self) -> None:
        self._producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["InvalidEvent", "Publisher"]  # what an operator's IS imports (README, "Publishing an event")
