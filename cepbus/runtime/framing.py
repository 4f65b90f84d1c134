"""The framing a process sends, and where it looks up Confluent schema ids.

Handlers and outboxes only ever produce Avro single-object bytes (the contract's framing, what an
outbox stores as the decision). The framing configured for the bus (`CEPBUS_WIRE_FORMAT`) is applied
when a message is sent: reframing swaps the 10-byte single-object header for the 5-byte Confluent
one, the Avro body is the same. Subjects follow TopicNameStrategy: `<topic>-value`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import fastavro.schema

from cepbus.contract import codec
from cepbus.contract.schemas import EventSchema, by_fingerprint
from cepbus.runtime.settings import BrokerSettings


def subject_for(topic: str) -> str:
    """TopicNameStrategy: the value schema of `topic`."""
    return f"{topic}-value"


def registry_schema_text(schema: EventSchema) -> str:
    """The schema as a registry holds it: self-contained (named types inlined), logical types and
    docs kept, so a Confluent deserializer reads timestamps and uuids as the contract means them."""
    return json.dumps(schema.definition, separators=(",", ":"), sort_keys=True)


class RegistrySchemaIds:
    """A Confluent Schema Registry (confluent-kafka's `SchemaRegistryClient`): ids registered under
    TopicNameStrategy subjects, and ids resolved to the contract's schemas by their canonical form.
    A schema the registry holds that is not in `schemas/avro` resolves to None: its events are not
    events of this contract. An unreachable registry raises `codec.SchemaLookupUnavailable`."""

    def __init__(self, url: str, client: Any | None = None) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient  # HTTP only, no stream framework

        self.url = url
        self._client = client or SchemaRegistryClient({"url": url})
        self._ids: dict[tuple[str, bytes], int] = {}
        self._schemas: dict[int, EventSchema | None] = {}
        self._lock = threading.Lock()

    def id_for(self, subject: str, schema: EventSchema) -> int:
        key = (subject, schema.fingerprint)
        found = self._ids.get(key)
        if found is not None:
            return found
        from confluent_kafka.schema_registry import Schema

        try:
            schema_id = int(
                self._client.register_schema(subject, Schema(registry_schema_text(schema), "AVRO"))
            )
        except Exception as exc:
            raise _unavailable_or(exc, f"registering {schema.name} under {subject}") from exc
        with self._lock:
            self._ids[key] = schema_id
            self._schemas[schema_id] = schema
        return schema_id

    def schema_for_id(self, schema_id: int) -> EventSchema | None:
        if schema_id in self._schemas:
            return self._schemas[schema_id]
        try:
            text = str(self._client.get_schema(schema_id).schema_str)
        except Exception as exc:
            if _status(exc) == 404:
                found = None
            else:
                raise _unavailable_or(exc, f"looking up schema id {schema_id}") from exc
        else:
            canonical = fastavro.schema.to_parsing_canonical_form(json.loads(text))
            fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
            found = by_fingerprint().get(fingerprint)
        with self._lock:
            self._schemas[schema_id] = found
        return found


def _status(exc: Exception) -> int | None:
    code = getattr(exc, "http_status_code", None)
    return code if isinstance(code, int) else None


def _unavailable_or(exc: Exception, doing: str) -> Exception:
    """A registry that answered no (4xx) is a verdict; anything else (refused, timeout, 5xx) is the
    infrastructure, retried."""
    status = _status(exc)
    if status is not None and 400 <= status < 500:
        return ValueError(f"the schema registry refused {doing}: {exc}")
    return codec.SchemaLookupUnavailable(f"schema registry unavailable while {doing}: {exc}")


class Framing:
    """Frames outgoing single-object bytes as configured; decoding takes both framings anyway."""

    def __init__(self, wire_format: str = "single-object", registry: RegistrySchemaIds | None = None) -> None:
        if wire_format not in ("single-object", "confluent"):
            raise ValueError(f"unknown wire format {wire_format!r}: single-object or confluent")
        self.wire_format = wire_format
        self.registry = registry

    @classmethod
    def from_settings(cls, broker: BrokerSettings) -> Framing:
        """The process's wire, from `CEPBUS_WIRE_FORMAT` and `CEPBUS_SCHEMA_REGISTRY_URL`; a configured
        registry also becomes where this process's decoder looks Confluent ids up."""
        registry = RegistrySchemaIds(broker.schema_registry_url) if broker.schema_registry_url else None
        if registry is not None:
            codec.use_schema_ids(registry)
        return cls(broker.wire_format, registry)

    def frame(self, single_object: bytes, topic: str) -> bytes:
        """`single_object` as this process sends it to `topic`."""
        if self.wire_format == "single-object":
            return single_object
        schema, _ = codec.writer_schema(single_object)
        schema_id = (
            self.registry.id_for(subject_for(topic), schema)
            if self.registry is not None
            else codec.contract_schema_id(schema)
        )
        return codec.confluent_frame(single_object, schema_id)


SINGLE_OBJECT = Framing()

__all__ = ["SINGLE_OBJECT", "Framing", "RegistrySchemaIds", "registry_schema_text", "subject_for"]
