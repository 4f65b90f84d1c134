"""The AsyncAPI document (docs/asyncapi) is what `cep-bus asyncapi` generates now, says what the
catalog, the wiring and the schemas say, carries payloads with the contract's Parsing Canonical Forms,
and passes `@asyncapi/parser` (tests/node/asyncapi-validate.js), which really fails a broken one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import fastavro.schema
import pytest
import yaml

from cepbus.contract import asyncapi, headers
from cepbus.contract.asyncapi import (
    DOCUMENT_FILE,
    SCHEMA_FOLDER,
    AsyncApiError,
    asyncapi_document,
    rendered_files,
    write_asyncapi,
)
from cepbus.contract.models import EVENT_MODELS
from cepbus.contract.schemas import event_schema, event_schemas, schema_dir
from cepbus.contract.topics import CORE_TOPICS, notice_inbox, referral_inbox, referral_rejections
from cepbus.contract.wiring import ORG, wiring
from tests.support import ROOT
from tests.support.node import NODE_DIR, require_node

OUT = ROOT / "docs" / "asyncapi"
VALIDATOR = NODE_DIR / "asyncapi-validate.js"
PER_ORG = {referral_inbox(ORG).name, referral_rejections(ORG).name, notice_inbox(ORG).name}
REGENERATE = "docs/asyncapi is stale: run `cep-bus asyncapi`"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document()


def test_the_committed_files_are_what_the_generator_makes_now() -> None:
    expected = rendered_files()
    for relative, text in expected.items():
        path = OUT / relative
        assert path.is_file(), f"{relative} missing; {REGENERATE}"
        assert path.read_text(encoding="utf-8") == text, f"{relative} differs; {REGENERATE}"
    committed = {f"{SCHEMA_FOLDER}/{p.name}" for p in (OUT / SCHEMA_FOLDER).glob("*.avsc")}
    stale = sorted(committed - set(expected))
    assert not stale, f"stale schema copies {stale}; {REGENERATE}"


def test_the_generation_is_deterministic_and_the_writer_drops_stale_copies(tmp_path: Path) -> None:
    (tmp_path / SCHEMA_FOLDER).mkdir()
    (tmp_path / SCHEMA_FOLDER / "fr.cepbus.Gone.avsc").write_text("{}")
    write_asyncapi(tmp_path)
    first = {p.relative_to(tmp_path): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    write_asyncapi(tmp_path)
    second = {p.relative_to(tmp_path): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert first == second
    assert Path(SCHEMA_FOLDER, "fr.cepbus.Gone.avsc") not in first
    assert {str(p) for p in first} == set(rendered_files())


def test_every_topic_of_the_catalog_has_its_channel(document: dict[str, Any]) -> None:
    channels = document["channels"]
    by_address = {channel["address"]: channel for channel in channels.values()}
    assert set(by_address) == {spec.name for spec in CORE_TOPICS} | PER_ORG
    for spec in (*CORE_TOPICS, referral_inbox(ORG), referral_rejections(ORG), notice_inbox(ORG)):
        channel = by_address[spec.name]
        assert channel["bindings"]["kafka"]["topic"] == spec.name
        assert channel["bindings"]["kafka"]["partitions"] == spec.partition_count(asyncapi.DEFAULT_PARTITIONS)
        (ref,) = channel["messages"].values()
        message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
        assert message["title"] == spec.payload.avro_name, spec.name


def test_the_inbox_and_rejection_channels_are_parameterised_by_organisation(document: dict[str, Any]) -> None:
    for channel in document["channels"].values():
        if channel["address"] in PER_ORG:
            assert "{org}" in channel["address"] and set(channel["parameters"]) == {"org"}
            assert channel["parameters"]["org"]["description"]
        else:
            assert "parameters" not in channel and "{" not in channel["address"]


def test_every_event_type_has_a_message_with_its_headers_and_key(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    assert {m["title"] for m in messages.values()} == set(event_schemas()) == set(EVENT_MODELS)
    header_values = {getattr(headers, name) for name in headers.__all__}
    for message in messages.values():
        properties = message["headers"]["properties"]
        assert set(properties) == header_values  # whatever headers.py exports, e.g. a traceparent
        assert properties[headers.EVENT_TYPE_HEADER]["const"] == message["title"]
        assert message["correlationId"]["location"] == f"$message.header#/{headers.CORRELATION_HEADER}"
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert message["x-cepbus-fingerprint"] == event_schema(message["title"]).fingerprint.hex()


def test_dead_letters_are_keyed_as_the_document_says(document: dict[str, Any]) -> None:
    """The catalog's key of `cep.deadletter` is "original key"; on the wire a dead letter has none."""
    from cepbus.runtime.messages import Incoming
    from cepbus.runtime.processing import EventProcessor

    poison = Incoming("cep.intake.registered", 0, 7, b"person-1", b"not avro")
    letter = EventProcessor("router", "cep-bus-router").dead_letter(poison, "not_avro", "test", "DecodeError")
    assert letter.key() is None and letter.event.original_key == b"person-1"  # type: ignore[attr-defined]
    key = document["components"]["messages"]["DeadLetter"]["bindings"]["kafka"]["key"]["description"]
    assert key.startswith("None: a dead letter is sent without a key") and "original_key" in key


def test_a_header_without_a_description_stops_the_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headers, "NEW_HEADER", "cepbus-new", raising=False)
    monkeypatch.setattr(headers, "__all__", [*headers.__all__, "NEW_HEADER"])
    with pytest.raises(AsyncApiError, match="NEW_HEADER"):
        asyncapi_document()


def _as_address(wired: str) -> str:
    """A wiring name as the address of its channel: `cep.referral.inbox.*` is every organisation's inbox."""
    return f"{wired[:-1]}{ORG}" if wired.endswith("*") else wired


def test_every_read_and_write_of_the_wiring_is_an_operation(document: dict[str, Any]) -> None:
    channels = document["channels"]
    found: dict[str, set[tuple[str, str]]] = {}
    for op_id, op in document["operations"].items():
        channel_id = op["channel"]["$ref"].removeprefix("#/channels/")
        principal = op["x-cepbus-principal"]
        assert op_id == f"{principal}.{op['action']}.{channel_id}"
        (message,) = op["messages"]
        assert message["$ref"].startswith(f"#/channels/{channel_id}/messages/")
        found.setdefault(principal, set()).add((op["action"], channels[channel_id]["address"]))
    expected = {
        principal: {("receive", _as_address(t)) for t in access["reads"]}
        | {("send", _as_address(t)) for t in access["writes"]}
        for principal, access in wiring().items()
    }
    assert found == expected
    assert len(document["operations"]) == sum(len(a["reads"]) + len(a["writes"]) for a in wiring().values())


def test_receive_operations_carry_the_consumer_groups(document: dict[str, Any]) -> None:
    from services.deadletters.settings import DeadLetterSettings
    from services.ledger.settings import LedgerSettings
    from services.mailer.settings import MailerSettings
    from services.notifier.settings import NotifierSettings
    from services.router.settings import RouterSettings

    group_ids = {
        service: settings.model_fields["group_id"].default
        for service, settings in (
            ("router", RouterSettings),
            ("notifier", NotifierSettings),
            ("ledger", LedgerSettings),
            ("deadletters", DeadLetterSettings),
            ("mailer", MailerSettings),
        )
    }
    declared = wiring()
    for op in document["operations"].values():
        principal, kafka = op["x-cepbus-principal"], op["bindings"]["kafka"]
        if op["action"] == "send":
            assert "groupId" not in kafka
            continue
        assert op["x-cepbus-groups"] == declared[principal]["groups"]
        if principal in group_ids:  # a service: the one group it joins, its settings' default
            assert kafka["groupId"]["enum"] == [group_ids[principal]]
        else:
            prefixes = [g.removesuffix("*") for g in declared[principal]["groups"]]
            assert kafka["groupId"]["examples"] == prefixes


def test_the_payloads_have_the_contracts_canonical_forms(document: dict[str, Any]) -> None:
    for message in document["components"]["messages"].values():
        ref = message["payload"]["schema"]["$ref"]
        assert message["payload"]["schemaFormat"] == asyncapi.AVRO_FORMAT
        copy = json.loads((OUT / ref).read_text())  # relative to docs/asyncapi/asyncapi.yaml
        canonical = fastavro.schema.to_parsing_canonical_form(fastavro.schema.parse_schema(copy))
        assert canonical == event_schema(message["title"]).canonical_form, ref


def test_the_settings_the_document_restates_are_the_deployments(document: dict[str, Any]) -> None:
    """The contract imports neither the runtime nor the composition root: its constants are pinned here."""
    from cepbus.runtime.settings import BrokerSettings
    from cepbus_app import k8s
    from cepbus_app.broker import EmbeddedBrokerSettings

    partitions = BrokerSettings.model_fields["topic_partitions"].default
    assert partitions == k8s.DEFAULT_PARTITIONS == asyncapi.DEFAULT_PARTITIONS
    embedded = EmbeddedBrokerSettings.model_fields
    assert f"{embedded['host'].default}:{embedded['port'].default}" == asyncapi.DEVELOPMENT_HOST
    kustomization = yaml.safe_load((ROOT / "deploy/k8s/base/kustomization.yaml").read_text())
    (settings,) = [g for g in kustomization["configMapGenerator"] if g["name"] == "cepbus-settings"]
    assert f"CEPBUS_BOOTSTRAP_SERVERS={asyncapi.PRODUCTION_HOST}" in settings["literals"]
    assert "CEPBUS_SECURITY_PROTOCOL=SSL" in settings["literals"]
    assert asyncapi.PRODUCTION_HOST.startswith(f"{k8s.CLUSTER}-kafka-bootstrap:")
    resources = yaml.safe_load_all((ROOT / "deploy/k8s/base/kafka/kafka.yaml").read_text())
    kafka = next(r for r in resources if r["kind"] == "Kafka")
    listeners = {str(listener["port"]): listener for listener in kafka["spec"]["kafka"]["listeners"]}
    port = asyncapi.PRODUCTION_HOST.rsplit(":", 1)[1]
    assert listeners[port]["tls"] is True and listeners[port]["authentication"]["type"] == "tls"
    assert document["servers"]["production"]["protocol"] == "kafka-secure"
    assert document["components"]["securitySchemes"][asyncapi.SECURITY_SCHEME]["type"] == "X509"


def _validate(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(VALIDATOR), str(path), *options], capture_output=True, text=True, timeout=120
    )


def test_the_asyncapi_parser_accepts_the_document(document: dict[str, Any]) -> None:
    require_node("avsc", "@asyncapi/parser", "@asyncapi/avro-schema-parser")
    done = _validate(OUT / DOCUMENT_FILE, "--canonical-forms")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["asyncapi"] == asyncapi.ASYNCAPI_VERSION
    assert summary["channels"] == len(CORE_TOPICS) + len(PER_ORG) == len(document["channels"])
    assert summary["operations"] == len(document["operations"])
    assert summary["messages"] == len(event_schemas())
    assert summary["servers"] == 2 and summary["securitySchemes"] == 1
    assert all(not d.startswith("error") for d in summary["diagnostics"])
    theirs: dict[str, str] = summary["payloads"]  # avsc's Parsing Canonical Forms, a second implementation
    assert theirs == {name: schema.canonical_form for name, schema in event_schemas().items()}


def _broken_missing_channel(folder: Path) -> None:
    path = folder / DOCUMENT_FILE
    document = yaml.safe_load(path.read_text())
    document["operations"]["router.receive.cep.nowhere"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/cep.nowhere"},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _broken_cross_file_reference(folder: Path) -> None:
    """The payload the parser would take silently: `fr.cepbus.Envelope` defined in another file."""
    name = "fr.cepbus.NoticeIssued.avsc"
    shutil.copy(schema_dir() / name, folder / SCHEMA_FOLDER / name)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [(_broken_missing_channel, "cep.nowhere"), (_broken_cross_file_reference, "undefined type name")],
    ids=["operation-on-a-missing-channel", "avro-name-from-another-file"],
)
def test_the_validator_fails_a_broken_document(tmp_path: Path, breakage: Any, expected: str) -> None:
    require_node("avsc", "@asyncapi/parser", "@asyncapi/avro-schema-parser")
    folder = tmp_path / "asyncapi"
    shutil.copytree(OUT, folder)
    breakage(folder)
    failed = _validate(folder / DOCUMENT_FILE)
    assert failed.returncode != 0 and failed.stdout == ""
    assert expected in failed.stderr
