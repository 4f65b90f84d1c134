"""Faults, for real: services killed with SIGKILL mid-stream, the broker restarted on s3 storage, a
stalled ledger database, poison messages. Every time the ledger ends up holding every expected
event exactly once.

These tests run their own services (their own consumer groups and ledger) so that killing them
leaves the session's `bus` alone; they reuse the session broker, except the broker-restart test,
which is about the broker and starts its own Tansu on s3 (a local moto_server).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from cepbus.contract import codec
from cepbus.contract.models import DeadLetter, Event, NoticeRequested
from cepbus.contract.topics import DEAD_LETTER, INTAKE_REGISTERED, NOTICE_REQUESTED
from cepbus.reference import load_reference
from cepbus.runtime.admin import bus_topics, ensure_topics
from cepbus.runtime.settings import BrokerSettings
from cepbus.sdk.publisher import Publisher
from cepbus_app.broker import EmbeddedBroker, EmbeddedBrokerSettings, port_open
from cepbus_app.demo.loop import Expected, plan, wait_until_known
from cepbus_app.supervisor import SERVICES, Supervisor
from services.ledger.store import open_store
from services.router.handlers import RouterHandlers
from tests.conftest import free_port
from tests.support.bus import RunningBus, ledger_identity
from tests.support.factories import intake, service_id

pytestmark = pytest.mark.integration


@dataclass
class FaultBus:
    """Three services of our own on a broker, which the tests may kill and restart."""

    bootstrap: str
    broker: BrokerSettings
    ledger_path: Path
    ports: dict[str, int]
    supervisor: Supervisor

    def start(self, service: str) -> None:
        self.supervisor.start(service)
        self.supervisor.wait_metrics(service, self.ports[service], timeout_s=90)

    def kill(self, service: str) -> None:
        """SIGKILL: no commit, no flush, no goodbye to the group."""
        self.supervisor.processes[service].kill()

    def ledger_counts(self, event_ids: set[str]) -> Counter[str]:
        """How many ledger rows hold each of these event ids (a duplicate would count 2)."""
        conn = sqlite3.connect(f"file:{self.ledger_path}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT event_id FROM ledger_leaves").fetchall()
        finally:
            conn.close()
        return Counter(row[0] for row in rows if row[0] in event_ids)

    def wait_for(self, event_ids: set[str], timeout_s: float = 90.0) -> set[str]:
        deadline = time.monotonic() + timeout_s
        missing = set(event_ids)
        while missing and time.monotonic() < deadline:
            time.sleep(0.5)
            if self.ledger_path.exists():
                missing = event_ids - set(self.ledger_counts(event_ids))
        return missing

    def assert_exactly_once(self, expected: Expected, timeout_s: float = 120.0) -> None:
        ids = set(expected.ids)
        missing = self.wait_for(ids, timeout_s)
        assert not missing, f"{len(missing)} of {len(ids)} events never reached the ledger:\n" + "\n".join(
            self.supervisor.tail(service, 8) for service in self.supervisor.processes
        )
        counts = self.ledger_counts(ids)
        assert set(counts.values()) == {1}, "some events are in the ledger more than once"
        store = open_store(str(self.ledger_path))
        try:
            assert store.verify().ok
        finally:
            store.close()


def start_fault_bus(bootstrap: str, workdir: Path, extra_env: dict[str, str] | None = None) -> FaultBus:
    suffix = uuid.uuid4().hex[:8]
    ledger_path = workdir / "ledger.db"
    ports = {service: free_port() for service in SERVICES}
    identity = ledger_identity(workdir, f"cep-bus.test/faults-{suffix}")
    env = {
        "CEPBUS_BOOTSTRAP_SERVERS": bootstrap,
        "CEPBUS_LEDGER_DATABASE_URL": f"sqlite:///{ledger_path}",
        "CEPBUS_ROUTER_DATABASE_URL": f"sqlite:///{workdir / 'router.db'}",
        "CEPBUS_REFERRALS_DATABASE_URL": f"sqlite:///{workdir / 'referrals.db'}",
        "CEPBUS_REFERRALS_HTTP_PORT": str(free_port()),
        "CEPBUS_LEDGER_ORIGIN": identity.origin,
        "CEPBUS_LEDGER_SIGNING_KEY_PATH": str(identity.signing_key_path),
        **(extra_env or {}),
    }
    for service, port in ports.items():
        env[f"CEPBUS_{service.upper()}_METRICS_PORT"] = str(port)
        env[f"CEPBUS_{service.upper()}_GROUP_ID"] = f"cepbus-{service}-faults-{suffix}"
    broker = BrokerSettings(bootstrap_servers=bootstrap)
    ensure_topics(broker, bus_topics())
    bus = FaultBus(bootstrap, broker, ledger_path, ports, Supervisor(log_dir=workdir / "logs", env=env))
    try:
        for service in SERVICES:
            bus.supervisor.start(service)
        for service in SERVICES:
            bus.supervisor.wait_metrics(service, ports[service], timeout_s=90)
    except BaseException:
        bus.supervisor.stop_all()
        raise
    return bus


@pytest.fixture(scope="module")
def fault_bus(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultBus]:
    bus = start_fault_bus(kafka_bootstrap, tmp_path_factory.mktemp("faults"))
    try:
        yield bus
    finally:
        bus.supervisor.stop_all()


def stream(bus: FaultBus, events: list[Event], per_second: float) -> threading.Thread:
    """Publish `events` at a steady rate in the background (acks=all: each one is on the broker)."""

    def run() -> None:
        with Publisher(bus.broker, client_id="cepbus-faults") as publisher:
            for index, event in enumerate(events):
                publisher.publish(event)
                time.sleep(max(0.0, index / per_second - (time.monotonic() - started)))

    started = time.monotonic()
    thread = threading.Thread(target=run, name="publisher", daemon=True)
    thread.start()
    return thread


def journeys(count: int, seed: int) -> tuple[list[Event], Expected]:
    intakes, choices, expected = plan(count, seed=seed)
    by_correlation = {c.envelope.correlation_id: c for c in choices}
    events: list[Event] = []
    for event in intakes:  # each choice right after its intake: person by person, as in life
        events.append(event)
        if event.envelope.correlation_id in by_correlation:
            events.append(by_correlation[event.envelope.correlation_id])
    return events, expected


@pytest.mark.parametrize("victim", ["router", "notifier", "ledger"])
def test_a_service_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    fault_bus: FaultBus, victim: str
) -> None:
    events, expected = journeys(160, seed={"router": 101, "notifier": 102, "ledger": 103}[victim])
    publisher = stream(fault_bus, events, per_second=80)
    time.sleep(1.5)  # mid-stream: some events handled, some in flight, most still to come
    fault_bus.kill(victim)
    time.sleep(0.5)
    fault_bus.start(victim)
    publisher.join(timeout=60)
    assert not publisher.is_alive()
    fault_bus.assert_exactly_once(expected)
    assert expected.by_type()["NoticeIssued"] > 10  # the stream exercised the whole loop


def _hold_ledger_lock(path: Path, seconds: float) -> threading.Thread:
    """Another process's writer holding the database: the ledger's appends wait (or fail and retry)."""
    ready = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            ready.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(30)
    return thread


def _notices_on_topic(bus: FaultBus, wanted: set[str], timeout_s: float) -> set[str]:
    """Which of these NoticeRequested ids the router has put on its topic."""
    consumer = KafkaConsumer(bootstrap_servers=bus.broker.bootstrap_list, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(NOTICE_REQUESTED.name, p)
            for p in consumer.partitions_for_topic(NOTICE_REQUESTED.name) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while found != wanted and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                for record in records:
                    try:
                        event = codec.decode(record.value)
                    except codec.DecodeError:
                        continue
                    if str(event.event_id) in wanted:
                        found.add(str(event.event_id))
        return found
    finally:
        consumer.close()


def test_a_stalled_ledger_database_holds_the_ledger_back_and_loses_nothing(fault_bus: FaultBus) -> None:
    events, expected = journeys(120, seed=11)
    requests = {event_id for event_id, kind in expected.ids.items() if kind == "NoticeRequested"}
    holder = _hold_ledger_lock(fault_bus.ledger_path, seconds=8.0)
    stream(fault_bus, events, per_second=100).join(timeout=60)
    # while the ledger cannot write, the router goes on: its notice requests are all on the topic
    assert _notices_on_topic(fault_bus, requests, timeout_s=30) == requests
    assert holder.is_alive(), "the database was released before the check: the stall proved nothing"
    assert not fault_bus.ledger_counts(set(expected.ids)), "the ledger wrote through the held lock?"
    holder.join()
    fault_bus.assert_exactly_once(expected)


# -- poison messages (the session bus: nothing is killed) -----------------------------------------


def _wait_in_ledger(bus: RunningBus, event_ids: set[str], timeout_s: float = 60.0) -> set[str]:
    with open_store(bus.ledger_url) as store:
        return wait_until_known(store.known_event_ids, event_ids, timeout_s)


def _dead_letters_for(bus: RunningBus, values: set[bytes], timeout_s: float = 30.0) -> list[DeadLetter]:
    consumer = KafkaConsumer(bootstrap_servers=bus.broker.bootstrap_list, enable_auto_commit=False)
    try:
        partition = TopicPartition(DEAD_LETTER.name, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        found: list[DeadLetter] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                for record in records:
                    letter = codec.decode(record.value)
                    assert isinstance(letter, DeadLetter)
                    if letter.original_value in values:
                        found.append(letter)
            if {letter.original_value for letter in found} == values:
                break
        return found
    finally:
        consumer.close()


def test_poison_messages_do_not_block_their_partition(bus: RunningBus) -> None:
    """On one person's partition: garbage, an intake the rules refuse and a notice request the
    notifier cannot render, each followed by valid events that must all get through."""
    person = f"p-poison-{uuid.uuid4().hex[:8]}"
    garbage = b"\xc3\x01" + uuid.uuid4().bytes  # the marker, then nonsense
    refused = intake(person=person, region="11", departement="13")  # département not in the region
    [valid_request] = [
        out.event
        for out in RouterHandlers(load_reference()).on_intake(intake(person=person, cadre=True))
        if isinstance(out.event, NoticeRequested)
    ]
    assert isinstance(valid_request, NoticeRequested)
    unrenderable = valid_request.model_copy(
        update={
            "envelope": valid_request.envelope.model_copy(update={"event_id": uuid.uuid4()}),
            "region_code": "99",
        }
    )
    producer = KafkaProducer(bootstrap_servers=bus.broker.bootstrap_list, acks="all")
    key = person.encode()
    poison = {garbage, codec.encode(refused), codec.encode(unrenderable)}
    try:
        producer.send(INTAKE_REGISTERED.name, key=key, value=garbage).get(timeout=10)
        producer.send(INTAKE_REGISTERED.name, key=key, value=codec.encode(refused)).get(timeout=10)
        producer.send(NOTICE_REQUESTED.name, key=key, value=codec.encode(unrenderable)).get(timeout=10)
    finally:
        producer.close()
    after = [intake(person=person, boeth=True) for _ in range(3)]
    with Publisher(bus.broker) as publisher:
        publisher.publish_many(after)
    notices = {
        service_id(event.event_id, "notice-requested", "notice-issued")
        for event in after
    }
    assert not _wait_in_ledger(bus, notices | {str(e.event_id) for e in after}), "the partition is stuck"
    letters = _dead_letters_for(bus, poison)
    reasons = {(letter.service, letter.reason.split(":", 1)[0]) for letter in letters}
    assert ("router", "unknown_schema") in reasons  # the marker, then no schema we know
    assert ("router", "intake_rejected") in reasons
    assert ("notifier", "handler_error") in reasons


# -- the broker restarted on s3 storage ------------------------------------------------------------


@pytest.fixture
def moto_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local S3 (moto_server) with one bucket; the AWS env is set for the broker we start."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(binary).exists():
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in {
            "AWS_ENDPOINT": endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "eu-west-3",
        }.items():
            monkeypatch.setenv(name, value)
        import boto3

        bucket = f"cepbus-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-3").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
        )
        yield bucket
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_a_broker_restarted_mid_stream_on_s3_loses_nothing(moto_s3: str, tmp_path: Path) -> None:
    settings = EmbeddedBrokerSettings(
        port=free_port(), storage_engine=f"s3://{moto_s3}/", log_file=tmp_path / "tansu.log"
    )
    broker = EmbeddedBroker(settings)
    broker.start()
    bus: FaultBus | None = None
    try:
        bus = start_fault_bus(broker.bootstrap_servers, tmp_path, {"CEPBUS_FETCH_MAX_WAIT_MS": "250"})
        before, expected_before = journeys(40, seed=21)
        stream(bus, before, per_second=40).join(timeout=60)
        time.sleep(1.0)  # some of it handled, some in flight
        broker.process.kill()  # SIGKILL: the broker dies mid-stream
        broker.process.wait()
        broker.start()
        after, expected_after = journeys(40, seed=22)
        stream(bus, after, per_second=40).join(timeout=120)
        bus.assert_exactly_once(expected_before, timeout_s=180)
        bus.assert_exactly_once(expected_after, timeout_s=60)
    finally:
        if bus:
            bus.supervisor.stop_all()
        broker.stop()
