"""Through the running services: an intake written by confluent-kafka's own Avro serializer (Confluent
framing, ids from `cep-bus schema-registry`) is decided by the router, which sends Confluent framing
(the session bus configures it so), read back by confluent-kafka's deserializer; the notifier, on the
default single-object framing, takes the router's Confluent output; the ledger keeps both as
single-object leaves. The caller's W3C trace runs through all of it, in headers and in the logs."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from cepbus.contract import codec, tracecontext
from cepbus.contract.headers import (
    CORRELATION_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TRACEPARENT_HEADER,
)
from cepbus.contract.schemas import event_schema
from cepbus.contract.topics import INTAKE_REGISTERED, NOTICE_ISSUED, NOTICE_REQUESTED
from cepbus.runtime.framing import registry_schema_text
from services.ledger.store import SqlLedgerStore
from tests.support.authorship import signer
from tests.support.bus import RunningBus, wait_for_ids
from tests.support.factories import intake, service_id
from tests.support.registry import running_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry() -> Iterator[SchemaRegistryClient]:
    with running_registry() as url:
        yield SchemaRegistryClient({"url": url})


def first_for(bus: RunningBus, topic: str, person: str, timeout_s: float = 60.0) -> Message:
    """The first message of `topic` keyed by `person` (the partition key), read from the beginning."""
    consumer = Consumer(
        {"bootstrap.servers": bus.bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.topics[topic].partitions]
        consumer.assign(partitions)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            if message.key() == person.encode():
                return message
        raise AssertionError(f"nothing for {person} on {topic} within {timeout_s} s")
    finally:
        consumer.close()


def header(message: Message, name: str) -> str | None:
    return next((v.decode() for k, v in message.headers() or [] if k == name), None)


def as_record(event: Any, _ctx: Any = None) -> dict[str, Any]:
    return dict(event.model_dump(mode="python"))


def test_confluent_framing_and_the_trace_run_through_the_services(
    bus: RunningBus, registry: SchemaRegistryClient
) -> None:
    person = f"p-confluent-{secrets.token_hex(6)}"
    event = intake(person=person, cadre=True, occurred_at=datetime.now(UTC))
    trace_id = secrets.token_hex(16)
    caller = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    serializer = AvroSerializer(registry, registry_schema_text(event_schema("IntakeRegistered")), as_record)
    value = serializer(event, SerializationContext(INTAKE_REGISTERED.name, MessageField.VALUE))
    assert value is not None and value[0] == 0
    producer = Producer({"bootstrap.servers": bus.bootstrap, "acks": "all"})
    producer.produce(
        INTAKE_REGISTERED.name,
        value,
        person.encode(),
        headers=[
            (CORRELATION_HEADER, event.envelope.correlation_id.encode()),
            (EVENT_TYPE_HEADER, event.avro_name.encode()),
            (TRACEPARENT_HEADER, caller.encode()),
            # its operator's signature, over the same body in single-object framing (the contract's)
            (SIGNATURE_HEADER, signer(event.operator_id).sign([codec.single_object(value)])[0].header()),
        ],
    )
    assert producer.flush(30) == 0

    # the router's decision, in Confluent framing: confluent-kafka's deserializer reads it
    requested = first_for(bus, NOTICE_REQUESTED.name, person)
    raw = requested.value()
    assert raw is not None and raw[0] == 0
    record = AvroDeserializer(registry)(raw, SerializationContext(NOTICE_REQUESTED.name, MessageField.VALUE))
    assert record is not None and record["intake_event_id"] == str(event.event_id)
    assert record["envelope"]["person_pseudonym"] == person
    requested_trace = tracecontext.parse(header(requested, TRACEPARENT_HEADER))
    assert requested_trace is not None and requested_trace.trace_id == trace_id

    # the notifier took the Confluent-framed request; it sends single-object (the default)
    issued = first_for(bus, NOTICE_ISSUED.name, person)
    assert (issued.value() or b"")[:2] == codec.MARKER
    notice = codec.decode(issued.value() or b"")
    issued_trace = tracecontext.parse(header(issued, TRACEPARENT_HEADER))
    assert issued_trace is not None and issued_trace.trace_id == trace_id
    assert issued_trace.span_id == notice.event_id.bytes[8:].hex() != requested_trace.span_id

    # the ledger holds all three, each leaf single-object whatever framing it came in
    notice_requested_id = service_id(event.event_id, "notice-requested")
    ids = {str(event.event_id), notice_requested_id, str(notice.event_id)}
    assert not wait_for_ids(bus, ids)
    with SqlLedgerStore(bus.ledger_url) as store:
        for event_id in ids:
            index = store.index_of(event_id)
            assert index is not None
            assert store.open_payload(index)[:2] == codec.MARKER

    # and the router's and the notifier's log lines name the trace
    for service in ("router", "notifier"):
        log_path = bus.supervisor.processes[service].log_path
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
            if any(trace_id in (line.get("traceparent") or "") for line in lines):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no {service} log line carries trace {trace_id}")
