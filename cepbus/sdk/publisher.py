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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaProducer
from kafka.producer.future import RecordMetadata
from prometheus_client import Counter

from cepbus.contract import codec, tracecontext
from cepbus.contract.headers import (
    CORRELATION_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TRACEPARENT_HEADER,
)
from cepbus.contract.models import Event
from cepbus.contract.statements import StatementSignature, StatementSigner
from cepbus.contract.topics import topic_for
from cepbus.reference import load_reference
from cepbus.reference.checks import reference_problems
from cepbus.runtime.client_config import kafka_python_security
from cepbus.runtime.framing import Framing
from cepbus.runtime.instruments import KafkaRequests, NotRecorded
from cepbus.runtime.settings import BrokerSettings
from cepbus.runtime.traffic import principal_of_org
from cepbus.trust.development import dev_private_key
from cepbus.trust.keys import key_id, raw_public_key
from cepbus.trust.settings import TrustSettings

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


def development_signer(org_id: str) -> StatementSigner:
    """INSECURE, development only: the derivable key of `org_id` (the packaged directory lists it)."""
    key = dev_private_key(org_id)
    return StatementSigner(org_id, key_id(org_id, raw_public_key(key)), key)


def signer_of(org_id: str, key: Ed25519PrivateKey) -> StatementSigner:
    """An organisation's signer from its private key (its key id is derived as the directory's)."""
    return StatementSigner(org_id, key_id(org_id, raw_public_key(key)), key)


def _one_line(exc: pydantic.ValidationError) -> str:
    """What is wrong, field by field, on one line and without the values (a refused note may be a
    megabyte of a person's words): `note: String should have at most 2000 characters`."""
    errors = exc.errors(include_input=False, include_url=False)
    said = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in errors[:5])
    return said + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")


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
        signer: StatementSigner | None = None,
    ) -> None:
        """`principal`: the KafkaUser this client authenticates as, when it is not the events'
        producer (the partner inbox publishes partners' signed updates as `cepbus-inbox`); None: the
        producer organisation's own (`operator-<org>`, `partner-<org>`). Only `requests`, a record of
        the Kafka requests made (the ACL test attaches one, `cepbus.runtime.traffic.TrafficLog`), uses
        it: the broker knows the principal from the certificate."""
        self.settings = settings or BrokerSettings()
        self.principal = principal
        self.requests: KafkaRequests = requests or NotRecorded()
        # the author's key (`signer`: every event is signed by its producer, cepbus.contract.statements);
        # None: in development, each producer's derivable development key; in production, refused
        self.signer = signer
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
            raise InvalidEvent(f"{model.__name__} is invalid: {_one_line(exc)}") from exc
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

    def _signer_for(self, event: Event, signer: StatementSigner | None) -> StatementSigner:
        """Who signs `event`: the signer given (per call, else the Publisher's), which must be the
        event's producer; in development only, the producer's derivable development key."""
        chosen = signer or self.signer
        producer = event.envelope.producer_org_id
        if chosen is None:
            if TrustSettings().production:
                PUBLISH_REFUSED.labels(type(event).__name__, "unsigned").inc()
                raise InvalidEvent(
                    f"no signing key for {producer}: every event on the bus is signed by its author;"
                    " pass Publisher(signer=StatementSigner(...)) with the key the directory lists",
                    "unsigned",
                )
            chosen = development_signer(producer)
        if chosen.org_id != producer:
            PUBLISH_REFUSED.labels(type(event).__name__, "misattributed").inc()
            raise InvalidEvent(
                f"{type(event).__name__} is produced as {producer} but would be signed by {chosen.org_id}",
                "misattributed",
            )
        return chosen

    def _signatures(
        self, events: list[Event], encoded: list[bytes], signer: StatementSigner | None
    ) -> list[StatementSignature]:
        """One signature per author over all of its events here, in the order they are sent."""
        signers = [self._signer_for(event, signer) for event in events]
        by_signer: dict[str, list[int]] = {}
        for index, chosen in enumerate(signers):
            by_signer.setdefault(chosen.key_id, []).append(index)
        signatures: list[StatementSignature | None] = [None] * len(events)
        for positions in by_signer.values():
            chosen = signers[positions[0]]
            for position, signature in zip(
                positions, chosen.sign([encoded[i] for i in positions]), strict=True
            ):
                signatures[position] = signature
        return [s for s in signatures if s is not None]

    def _send(
        self,
        event: Event,
        topic: str | None,
        value: bytes,
        traceparent: str | None,
        signature: StatementSignature,
    ) -> Any:
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
                (SIGNATURE_HEADER, signature.header()),
            ],
        )

    def publish(
        self,
        event: Event | tuple[type[Event], Mapping[str, Any]],
        *,
        topic: str | None = None,
        traceparent: str | None = None,
        signer: StatementSigner | None = None,
        signed: StatementSignature | None = None,
    ) -> RecordMetadata:
        """Validate, encode, sign, send; return when the broker has acknowledged (acks=all).
        `traceparent`: the caller's W3C trace context, continued; without one a new trace starts.
        `signer`: the author's key for this call (default: the Publisher's). `signed`: a signature the
        author made elsewhere of exactly this event's bytes (the partner inbox: in the browser, whose
        key never leaves it), sent as is; the consumers verify it like any other."""
        valid = self.validate(event)
        value = self._encode(valid)
        [signature] = [signed] if signed is not None else self._signatures([valid], [value], signer)
        sent = self._send(valid, topic, value, traceparent, signature)
        return sent.get(timeout=self.settings.request_timeout_s)

    def publish_many(
        self,
        events: Iterable[Event],
        *,
        topic: str | None = None,
        traceparent: str | None = None,
        signer: StatementSigner | None = None,
    ) -> list[RecordMetadata]:
        """Validate, encode and sign all first (nothing is sent if one is invalid; one signature per
        author for the whole batch), then send and wait for every ack."""
        valid = [self.validate(event) for event in events]
        encoded = [self._encode(event) for event in valid]
        signatures = self._signatures(valid, encoded, signer)
        futures = [
            self._send(event, topic, value, traceparent, signature)
            for event, value, signature in zip(valid, encoded, signatures, strict=True)
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


__all__ = [
    "InvalidEvent",
    "Publisher",
    "StatementSigner",
    "development_signer",
    "signer_of",
]  # what an operator's IS imports (README, "Publishing an event")
