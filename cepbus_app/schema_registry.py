"""`cep-bus schema-registry`: the contract folder served read-only on the Confluent Schema Registry
REST paths a client needs, for development and tests.

Subjects follow TopicNameStrategy (`<topic>-value`, one per topic of the catalog, inboxes and
rejection topics of every organisation included); a subject's versions are the payload type's
released versions (`schemas/avro/released/<type>/v<N>.avsc`) then the current one. Ids are the
contract's (`cepbus.contract.codec.contract_schema_id`): the same in every run, the ids a process
without a registry frames with. Registering is answered for a schema of the contract only (the id
it already has, as a real registry does for a schema it holds); anything else is refused: the
contract changes by pull request, not by a producer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import fastavro.schema
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cepbus.contract import codec
from cepbus.contract.schemas import EventSchema, by_fingerprint, event_schemas, schema_dir
from cepbus.contract.topics import TopicSpec
from cepbus.runtime.admin import bus_topics
from cepbus.runtime.framing import registry_schema_text, subject_for

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass(frozen=True)
class Version:
    subject: str
    version: int
    schema: EventSchema

    @property
    def schema_id(self) -> int:
        return codec.contract_schema_id(self.schema)

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
            "schemaType": "AVRO",
            "schema": registry_schema_text(self.schema),
        }


def type_versions(name: str) -> list[EventSchema]:
    """A type's schemas oldest first: its released versions, then the current one if it is new."""
    by_print = by_fingerprint()
    released = sorted(
        (schema_dir() / "released" / name).glob("v*.avsc"), key=lambda path: int(path.stem[1:])
    )
    versions: list[EventSchema] = []
    for path in released:
        definition = fastavro.schema.load_schema(str(path), _write_hint=False)
        canonical = fastavro.schema.to_parsing_canonical_form(definition)
        schema = by_print.get(bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")))
        if schema is not None and schema not in versions:
            versions.append(schema)
    current = event_schemas()[name]
    if not versions or versions[-1].fingerprint != current.fingerprint:
        versions = [v for v in versions if v.fingerprint != current.fingerprint] + [current]
    return versions


class ContractRegistry:
    """The registry's answers, from the contract folder and the topic catalog; no state."""

    def __init__(self, topics: list[TopicSpec] | None = None) -> None:
        specs = topics if topics is not None else bus_topics()
        self.subjects: dict[str, list[Version]] = {}
        for spec in sorted(specs, key=lambda s: s.name):
            subject = subject_for(spec.name)
            schemas = type_versions(spec.payload.avro_name)
            self.subjects[subject] = [Version(subject, n, s) for n, s in enumerate(schemas, start=1)]
        self.by_id = {v.schema_id: v.schema for versions in self.subjects.values() for v in versions}

    def version(self, subject: str, version: str) -> Version | None:
        versions = self.subjects.get(subject)
        if not versions:
            return None
        if version in ("latest", "-1"):
            return versions[-1]
        if not version.isdigit() or not 1 <= int(version) <= len(versions):
            return None
        return versions[int(version) - 1]

    def find(self, subject: str, schema_text: str) -> Version | None:
        """The version of `subject` whose schema has the canonical form of `schema_text`."""
        try:
            canonical = fastavro.schema.to_parsing_canonical_form(json.loads(schema_text))
        except Exception:
            return None
        for version in self.subjects.get(subject, []):
            if version.schema.canonical_form == canonical:
                return version
        return None


def _error(status: int, code: int, message: str) -> JSONResponse:
    """Confluent's error body: `error_code` is the HTTP status followed by a detail number."""
    return JSONResponse({"error_code": code, "message": message}, status_code=status, media_type=CONTENT_TYPE)


def _ok(body: Any) -> JSONResponse:
    return JSONResponse(body, media_type=CONTENT_TYPE)


def build_app(registry: ContractRegistry | None = None) -> FastAPI:
    contract = registry or ContractRegistry()
    api = FastAPI(title="cep-bus contract schema registry (read-only)", docs_url=None, redoc_url=None)

    @api.get("/subjects")
    def subjects() -> JSONResponse:
        return _ok(list(contract.subjects))

    @api.get("/subjects/{subject}/versions")
    def versions(subject: str) -> JSONResponse:
        if subject not in contract.subjects:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        return _ok([v.version for v in contract.subjects[subject]])

    @api.get("/subjects/{subject}/versions/{version}")
    def version(subject: str, version: str) -> JSONResponse:
        if subject not in contract.subjects:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        found = contract.version(subject, version)
        if found is None:
            return _error(404, 40402, f"Version {version} not found.")
        return _ok(found.as_json())

    @api.get("/subjects/{subject}/versions/{version}/schema")
    def version_schema(subject: str, version: str) -> JSONResponse:
        found = contract.version(subject, version) if subject in contract.subjects else None
        if found is None:
            return _error(404, 40402, f"Version {version} of '{subject}' not found.")
        return _ok(found.schema.definition)

    @api.get("/schemas/ids/{schema_id}")
    def by_id(schema_id: int) -> JSONResponse:
        schema = contract.by_id.get(schema_id)
        if schema is None:
            return _error(404, 40403, f"Schema {schema_id} not found")
        return _ok({"schemaType": "AVRO", "schema": registry_schema_text(schema)})

    @api.get("/schemas/ids/{schema_id}/versions")
    def id_versions(schema_id: int) -> JSONResponse:
        found = [
            {"subject": v.subject, "version": v.version}
            for versions in contract.subjects.values()
            for v in versions
            if v.schema_id == schema_id
        ]
        if not found:
            return _error(404, 40403, f"Schema {schema_id} not found")
        return _ok(found)

    async def _schema_text(request: Request) -> str | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            return None
        if body.get("schemaType", "AVRO") != "AVRO" or body.get("references"):
            return None
        return str(body["schema"])

    @api.post("/subjects/{subject}")
    async def lookup(subject: str, request: Request) -> JSONResponse:
        """Is this schema registered under the subject? (serializers with auto-register off)"""
        if subject not in contract.subjects:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        text = await _schema_text(request)
        found = contract.find(subject, text) if text is not None else None
        if found is None:
            return _error(404, 40403, "Schema not found")
        return _ok(found.as_json())

    @api.post("/subjects/{subject}/versions")
    async def register(subject: str, request: Request) -> JSONResponse:
        """Registering answers with the id a contract schema already has; nothing else is taken."""
        text = await _schema_text(request)
        if text is None:
            return _error(422, 42201, "Invalid schema: an AVRO schema without references is expected")
        if subject not in contract.subjects:
            return _error(403, 40301, f"read-only registry: '{subject}' is no topic of the bus's catalog")
        found = contract.find(subject, text)
        if found is None:
            return _error(
                409, 409, f"read-only registry: this schema is not in schemas/avro for '{subject}'"
            )
        return _ok({"id": found.schema_id, "subject": subject, "version": found.version})

    @api.get("/config")
    def config() -> JSONResponse:
        return _ok({"compatibilityLevel": "BACKWARD"})

    @api.get("/mode")
    def mode() -> JSONResponse:
        return _ok({"mode": "READONLY"})

    return api


def serve(host: str, port: int) -> None:
    uvicorn.run(build_app(), host=host, port=port, log_level="warning")

