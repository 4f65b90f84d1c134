"""The Confluent Schema Registry framing, against confluent-kafka's own client and serializers talking to
`cep-bus schema-registry` (cepbus_app/schema_registry.py) over HTTP.

What must hold: a consumer of the bus takes both framings (the first byte tells them apart); bytes
that confluent-kafka's AvroSerializer writes decode to the event, and what a cep-bus producer framed
for Confluent, confluent-kafka's AvroDeserializer reads; ids are the contract's; a registry that is
down is an infrastructure failure (retried), never a dead letter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from cepbus.contract import codec
from cepbus.contract.models import IntakeRegistered, NoticeRequested
from cepbus.contract.schemas import event_schema
from cepbus.contract.topics import INTAKE_REGISTERED, NOTICE_REQUESTED, referral_inbox
from cepbus.runtime.framing import Framing, RegistrySchemaIds, registry_schema_text
from cepbus.runtime.messages import Incoming
from cepbus.runtime.processing import EventProcessor
from cepbus.runtime.settings import BrokerSettings
from cepbus.runtime.sqldb import is_unavailable
from cepbus_app.schema_registry import ContractRegistry
from tests.conftest import free_port
from tests.support.factories import intake
from tests.support.registry import running_registry

INTAKE_SUBJECT = f"{INTAKE_REGISTERED.name}-value"


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    with running_registry() as url:
        yield url


@pytest.fixture(autouse=True)
def contract_ids() -> Iterator[None]:
    """Every test starts and ends with the contract's own ids as this process's resolver."""
    codec.use_schema_ids(None)
    yield
    codec.use_schema_ids(None)


def as_record(event: Any, _ctx: Any = None) -> dict[str, Any]:
    return dict(event.model_dump(mode="python"))


def test_the_registry_serves_every_topic_under_topic_name_strategy(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    subjects = client.get_subjects()
    assert INTAKE_SUBJECT in subjects
    assert f"{referral_inbox('apec-r11').name}-value" in subjects  # parameterised topics, per organisation
    latest = client.get_latest_version(INTAKE_SUBJECT)
    current = event_schema("IntakeRegistered")
    assert latest.schema_id == codec.contract_schema_id(current)
    assert latest.version == len(client.get_versions(INTAKE_SUBJECT))
    fetched = client.get_schema(latest.schema_id)
    assert fetched.schema_str == registry_schema_text(current)
    # an older released version keeps its own id, and resolves into the current model
    first = client.get_version(INTAKE_SUBJECT, 1)
    if first.schema_id != latest.schema_id:
        assert codec.ContractSchemaIds().schema_for_id(first.schema_id) is not None


def test_bytes_written_by_confluent_serializers_decode_on_the_bus(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    serializer = AvroSerializer(client, registry_schema_text(event_schema("IntakeRegistered")), as_record)
    event = intake()
    data = serializer(event, SerializationContext(INTAKE_REGISTERED.name, MessageField.VALUE))
    assert data is not None and data[0] == 0  # magic byte 0, then the 4-byte id
    assert int.from_bytes(data[1:5], "big") == codec.contract_schema_id(event_schema("IntakeRegistered"))
    assert codec.decode(data) == event
    # the same body as single-object: only the header differs
    assert codec.single_object(data) == codec.encode(event)


def test_confluent_deserializers_read_what_a_cep_bus_producer_frames(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    event = intake()
    framed = Framing("confluent").frame(codec.encode(event), INTAKE_REGISTERED.name)
    deserializer = AvroDeserializer(client)
    record = deserializer(framed, SerializationContext(INTAKE_REGISTERED.name, MessageField.VALUE))
    assert record == as_record(event)


def test_a_process_with_a_registry_registers_and_resolves_through_it(registry_url: str) -> None:
    wire = Framing.from_settings(BrokerSettings(wire_format="confluent", schema_registry_url=registry_url))
    assert isinstance(wire.registry, RegistrySchemaIds)
    event = intake()
    framed = wire.frame(codec.encode(event), INTAKE_REGISTERED.name)
    assert int.from_bytes(framed[1:5], "big") == codec.contract_schema_id(event_schema("IntakeRegistered"))
    assert codec.decode(framed) == event  # from_settings made the registry this process's resolver
    unknown = b"\x00" + (123).to_bytes(4, "big") + framed[5:]
    with pytest.raises(codec.DecodeError) as refused:
        codec.decode(unknown)
    assert refused.value.reason == "unknown_schema"


def test_the_registry_takes_no_schema_that_is_not_in_the_contract(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    foreign = json.dumps(
        {
            "type": "record",
            "name": "Intruder",
            "namespace": "fr.cepbus",
            "fields": [{"name": "x", "type": "int"}],
        }
    )
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(INTAKE_SUBJECT, Schema(foreign, "AVRO"))
    assert refused.value.http_status_code == 409
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_latest_version("no.such.topic-value")
    assert missing.value.http_status_code == 404
    # a contract schema under another topic's subject is refused too: TopicNameStrategy pins the payload
    text = registry_schema_text(event_schema("NoticeRequested"))
    with pytest.raises(SchemaRegistryError):
        client.register_schema(INTAKE_SUBJECT, Schema(text, "AVRO"))
    assert client.register_schema(f"{NOTICE_REQUESTED.name}-value", Schema(text, "AVRO")) == (
        codec.contract_schema_id(event_schema("NoticeRequested"))
    )
    assert httpx.get(f"{registry_url}/schemas/ids/123").status_code == 404


def test_a_registry_that_is_down_is_retried_not_dead_lettered() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    wire = Framing.from_settings(BrokerSettings(wire_format="confluent", schema_registry_url=down))
    event = intake()
    with pytest.raises(codec.SchemaLookupUnavailable) as unavailable:
        wire.frame(codec.encode(event), INTAKE_REGISTERED.name)
    assert is_unavailable(unavailable.value)
    schema_id = codec.contract_schema_id(event_schema("IntakeRegistered"))
    framed = codec.confluent_frame(codec.encode(event), schema_id)
    message = Incoming(INTAKE_REGISTERED.name, 0, 7, None, framed)
    processor = EventProcessor("router", "cep-bus/router")
    with pytest.raises(codec.SchemaLookupUnavailable):  # propagates: the driver retries the batch
        processor.handle(message, IntakeRegistered, lambda e: [])


def test_both_framings_decode_to_the_same_event_and_bad_headers_are_named() -> None:
    event = intake()
    single = codec.encode(event)
    confluent = codec.confluent_frame(single, codec.contract_schema_id(event_schema("IntakeRegistered")))
    assert codec.decode(single) == codec.decode(confluent) == event
    assert Framing().frame(single, INTAKE_REGISTERED.name) == single  # the default sends single-object
    with pytest.raises(codec.DecodeError) as short:
        codec.decode(b"\x00\x01\x02")
    assert short.value.reason == "truncated_header"
    with pytest.raises(codec.DecodeError) as marker:
        codec.decode(b"\x07" + single[1:])
    assert marker.value.reason == "bad_marker"
    with pytest.raises(codec.DecodeError) as trailing:
        codec.decode(confluent + b"\x00")
    assert trailing.value.reason == "trailing_bytes"


def test_contract_ids_are_distinct_for_every_current_and_released_schema() -> None:
    registry = ContractRegistry()
    ids = [v.schema_id for versions in registry.subjects.values() for v in versions]
    assert all(0 < i < 2**31 for i in ids)
    assert len(registry.by_id) == len({v.schema.fingerprint for vs in registry.subjects.values() for v in vs})
    assert NoticeRequested.avro_name in {s.name for s in registry.by_id.values()}
