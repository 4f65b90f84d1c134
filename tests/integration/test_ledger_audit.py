"""The ledger as an auditor meets it, on the session bus: signed checkpoints published on their topic,
then export, offline verification and the audit report."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from cepbus.auditlog.note import open_checkpoint
from cepbus.contract import codec
from cepbus.contract.models import CheckpointPublished
from cepbus.contract.topics import LEDGER_CHECKPOINTS, LEDGER_TOPICS
from cepbus_app.cli import app
from services.ledger.signing import load_signer
from services.ledger.store import SqlLedgerStore
from tests.support.bus import RunningBus, wait_for_ids
from tests.support.factories import intake, service_id

pytestmark = pytest.mark.integration


def published_checkpoints(
    bus: RunningBus, origin: str, at_least_size: int, timeout_s: float
) -> list[CheckpointPublished]:
    """This ledger's checkpoint events read from the topic, until one covers `at_least_size` entries
    (other ledgers on the same broker, e.g. the fault tests', publish there too)."""
    consumer = KafkaConsumer(bootstrap_servers=bus.broker.bootstrap_list, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(LEDGER_CHECKPOINTS.name, p)
                      for p in consumer.partitions_for_topic(LEDGER_CHECKPOINTS.name)]  # fmt: skip
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[CheckpointPublished] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not any(c.tree_size >= at_least_size for c in found):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    event = codec.decode(record.value)
                    assert isinstance(event, CheckpointPublished)
                    assert record.key == event.origin.encode()
                    if event.origin == origin:
                        found.append(event)
        return found
    finally:
        consumer.close()


def test_signed_checkpoints_are_published_and_verify_with_the_verifier_key(bus: RunningBus) -> None:
    events = [intake(cadre=True) for _ in range(3)]
    with bus.publisher() as publisher:
        publisher.publish_many(events)
    assert not wait_for_ids(bus, {str(e.event_id) for e in events})
    with SqlLedgerStore(bus.ledger_url) as store:
        covering = max(store.index_of(str(e.event_id)) or 0 for e in events) + 1
    # the service signs every 10 s (default) and publishes what it signed
    assert bus.ledger_settings is not None
    found = published_checkpoints(bus, bus.ledger_settings.origin, covering, timeout_s=30)
    assert found and found[-1].tree_size >= covering, f"no published checkpoint covers {covering} entries"
    verifier = load_signer(bus.ledger_settings).verifier()  # the key the ledger service signs with
    sizes = [c.tree_size for c in found]
    assert sizes == sorted(sizes)  # one partition, keyed by origin: in signing order
    with SqlLedgerStore(bus.ledger_url) as store:
        for event in found:
            checkpoint = open_checkpoint(event.signed_note, verifier)  # raises unless the signature holds
            assert (checkpoint.origin, checkpoint.size) == (event.origin, event.tree_size)
            assert base64.b64encode(checkpoint.root).decode() == event.root_hash_b64
            assert store.root(checkpoint.size) == checkpoint.root  # the tree the ledger holds
    assert LEDGER_CHECKPOINTS not in LEDGER_TOPICS  # the ledger does not record its own checkpoints


def test_export_verify_and_report_on_the_running_ledger(bus: RunningBus, tmp_path: Path) -> None:
    events = [intake(region="84", departement="69", cadre=True) for _ in range(4)]
    with bus.publisher() as publisher:
        publisher.publish_many(events)
    notices = {service_id(e.event_id, "notice-requested", "notice-issued")
               for e in events}  # fmt: skip
    assert not wait_for_ids(bus, {str(e.event_id) for e in events} | notices)
    assert bus.ledger_settings is not None
    identity = {  # the CLI signs as the running ledger does
        "CEPBUS_LEDGER_ORIGIN": bus.ledger_settings.origin,
        "CEPBUS_LEDGER_SIGNING_KEY_PATH": str(bus.ledger_settings.signing_key_path),
    }
    runner, bundle = CliRunner(env=identity), tmp_path / "bundle.json"
    db = ["--database-url", bus.ledger_url]
    exported = runner.invoke(app, ["ledger", "export", "--out", str(bundle), *db])
    assert exported.exit_code == 0, exported.output
    key = str(load_signer(bus.ledger_settings).verifier())
    verified = runner.invoke(app, ["ledger", "verify", "--bundle", str(bundle), "--key", key])
    assert verified.exit_code == 0, verified.output
    assert "bundle verified" in verified.stdout
    report = runner.invoke(app, ["audit", "report", "--bundle", str(bundle), "--key", key, "--region", "84"])
    assert report.exit_code == 0, report.output
    document = json.loads(report.stdout)
    assert document["source"]["key_pinned"] is True
    assert document["intakes"]["by_region"]["84"] >= 4
    assert document["notices"]["issued"] >= 4  # cadres are told about Apec
    assert document["unknown_event_types"] == {}
    csv_report = runner.invoke(app, ["audit", "report", "--format", "csv", *db])
    assert csv_report.exit_code == 0, csv_report.output
    assert csv_report.stdout.startswith("indicator,value\n")
