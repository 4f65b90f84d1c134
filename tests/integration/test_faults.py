"""Faults, for real: services killed with SIGKILL mid-stream, the broker restarted on s3 storage, a
stalled ledger database, poison messages. Every time the ledger ends up holding every expected
event exactly once.

These tests run their own services (their own consumer groups and ledger) so that killing them
leaves the session's `bus` alone; they reuse the session broker, except the broker-restart test,
which is about the broker and starts its own Tansu on s3 (a local moto_server).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
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
from cepbus_app.demo.loop import Expected, plan, scrape, wait_until_known
from cepbus_app.supervisor import SERVICES, Supervisor
from services.deadletters.store import DeadLetterStore, StoredDeadLetter
from services.ledger.store import SqlLedgerStore
from services.router.handlers import RouterHandlers
from tests.conftest import free_port
from tests.support.authorship import signed_headers
from tests.support.bus import RunningBus, ledger_identity, session_requests
from tests.support.factories import intake, service_id
from tests.support.postgres import POSTGRES_URL_ENV, fresh_schema

pytestmark = pytest.mark.integration


@dataclass
class FaultBus:
    """The stream services of our own on a broker, which the tests may kill and restart."""

    bootstrap: str
    broker: BrokerSettings
    ledger_path: Path
    ports: dict[str, int]
    supervisor: Supervisor
    ledger_url: str = ""  # when the ledger is not the SQLite file at ledger_path (PostgreSQL)
    deadletters_url: str = ""  # the dead-letter service's archive

    def publisher(self, **options: Any) -> Publisher:
        return Publisher(self.broker, requests=session_requests(), **options)

    @property
    def ledger(self) -> str:
        return self.ledger_url or f"sqlite:///{self.ledger_path}"

    def start(self, service: str, extra_env: dict[str, str] | None = None) -> None:
        self.supervisor.start(service, extra_env)
        self.supervisor.wait_metrics(service, self.ports[service], timeout_s=90)
        self.wait_ready(service)

    def wait_ready(self, service: str, timeout_s: float = 90.0) -> None:
        """Until /readyz says 200: the worker runs and holds partitions."""
        deadline = time.monotonic() + timeout_s
        while (answer := _readiness(self.ports[service]))[0] != 200:
            assert time.monotonic() < deadline, (
                f"{service} not ready: {answer}\n{self.supervisor.tail(service)}"
            )
            time.sleep(0.2)

    def start_armed(self, service: str, fault_points: str) -> None:
        """Restart `service` with a fault point armed; no wait, since it may die before it serves."""
        self.kill(service)
        self.supervisor.start(service, {"CEPBUS_FAULT_POINTS": fault_points})

    def wait_exit(self, service: str, timeout_s: float = 60.0) -> int | None:
        process = self.supervisor.processes[service].process
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def dead_letters(self) -> list[StoredDeadLetter]:
        """What the dead-letter service kept of cep.deadletter (it consumes the topic into its database)."""
        with DeadLetterStore(self.deadletters_url) as store:
            return store.list()

    def kill(self, service: str) -> None:
        """SIGKILL: no commit, no flush, no goodbye to the group."""
        self.supervisor.processes[service].kill()

    def ledger_counts(self, event_ids: set[str]) -> Counter[str]:
        """How many ledger rows hold each of these event ids (a duplicate would count 2)."""
        if self.ledger_url:
            try:
                with psycopg.connect(self.ledger_url.removeprefix("postgresql+psycopg:")) as conn:
                    rows = conn.execute("SELECT event_id FROM ledger_leaves").fetchall()
            except psycopg.OperationalError:  # PostgreSQL restarting: nothing read this time
                return Counter()
        else:
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
            if self.ledger_url or self.ledger_path.exists():
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
        store = SqlLedgerStore(self.ledger)
        try:
            assert store.verify().ok
        finally:
            store.close()


def start_fault_bus(
    bootstrap: str, workdir: Path, extra_env: dict[str, str] | None = None, ledger_url: str = ""
) -> FaultBus:
    suffix = uuid.uuid4().hex[:8]
    ledger_path = workdir / "ledger.db"
    ports = {service: free_port() for service in SERVICES}
    identity = ledger_identity(workdir, f"cep-bus.test/faults-{suffix}")
    env = {
        "CEPBUS_BOOTSTRAP_SERVERS": bootstrap,
        "CEPBUS_LEDGER_DATABASE_URL": f"sqlite:///{ledger_path}",
        "CEPBUS_ROUTER_DATABASE_URL": f"sqlite:///{workdir / 'router.db'}",
        "CEPBUS_REFERRALS_DATABASE_URL": f"sqlite:///{workdir / 'referrals.db'}",
        "CEPBUS_NOTIFIER_DATABASE_URL": f"sqlite:///{workdir / 'notifier.db'}",
        "CEPBUS_DEADLETTERS_DATABASE_URL": f"sqlite:///{workdir / 'deadletters.db'}",
        # the mailer's emails wait in its outbox: no SMTP server listens there
        "CEPBUS_MAILER_DATABASE_URL": f"sqlite:///{workdir / 'mailer.db'}",
        "CEPBUS_MAILER_SMTP_PORT": str(free_port()),
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
    if ledger_url:
        env["CEPBUS_LEDGER_DATABASE_URL"] = ledger_url
    supervisor = Supervisor(log_dir=workdir / "logs", env=env)
    bus = FaultBus(
        bootstrap, broker, ledger_path, ports, supervisor, ledger_url, env["CEPBUS_DEADLETTERS_DATABASE_URL"]
    )
    try:
        for service in SERVICES:
            bus.supervisor.start(service)
        for service in SERVICES:
            bus.supervisor.wait_metrics(service, ports[service], timeout_s=90)
    except BaseException:
        bus.supervisor.stop_all()
        raise
    return bus


#: Both stream runtimes must pass every fault test (issue #12); CEPBUS_RUNTIME picks one per process.
RUNTIMES = ["batch", "faust"]


@pytest.fixture(scope="module", params=RUNTIMES)
def fault_bus(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultBus]:
    env = {
        "CEPBUS_RUNTIME": request.param,
        # a stalled router database outlasts this, so the router's batches must wait and retry
        "CEPBUS_ROUTER_SQLITE_BUSY_TIMEOUT_S": "1",
    }
    bus = start_fault_bus(kafka_bootstrap, tmp_path_factory.mktemp(f"faults-{request.param}"), env)
    try:
        yield bus
    finally:
        bus.supervisor.stop_all()


def stream(bus: FaultBus, events: list[Event], per_second: float) -> threading.Thread:
    """Publish `events` at a steady rate in the background (acks=all: each one is on the broker)."""

    def run() -> None:
        with bus.publisher(client_id="cepbus-faults") as publisher:
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


def _hold_sqlite_write_lock(path: Path, seconds: float) -> threading.Thread:
    """Another process's writer holding a SQLite database: its service's writes wait (or fail and retry)."""
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
    holder = _hold_sqlite_write_lock(fault_bus.ledger_path, seconds=8.0)
    stream(fault_bus, events, per_second=100).join(timeout=60)
    # while the ledger cannot write, the router goes on: its notice requests are all on the topic
    assert _notices_on_topic(fault_bus, requests, timeout_s=30) == requests
    assert holder.is_alive(), "the database was released before the check: the stall proved nothing"
    assert not fault_bus.ledger_counts(set(expected.ids)), "the ledger wrote through the held lock?"
    holder.join()
    fault_bus.assert_exactly_once(expected)


def assert_no_valid_event_dead_lettered(bus: FaultBus, events: list[Event], expected: Expected) -> None:
    """Of this test's events and of what this bus's services derived from them, the only dead letters
    may be the intakes the rules reject (dated before their region's CEP opened): anything else is a
    valid event dead-lettered because something was down.

    Id collisions are left out: the session broker is shared, so the other buses' routers also decide
    on these intakes (another process, another moment: other bytes under the same derived ids), and
    whichever version reaches this ledger second is, rightly, a collision. That a service re-sends the
    same bytes after a crash is proven where one bus is alone (tests/unit/notifier/test_notifier_outbox.py,
    the outbox tests) and by the ledger's own collision tests."""
    ours = {str(event.event_id) for event in events} | set(expected.ids)
    wrong: Counter[str] = Counter()
    with DeadLetterStore(bus.deadletters_url) as store:
        for letter in store.list():
            if letter.reason_code in ("intake_rejected", "id_collision"):
                continue
            try:
                _, original = store.original(letter.event_id)
                event_id = str(codec.decode(original).event_id)
            except (codec.DecodeError, KeyError):
                continue  # not an event of this test (the tests here publish no garbage)
            if event_id in ours:
                wrong[f"{letter.service}:{letter.reason_code}"] += 1
    assert not wrong, wrong


#: The services that send events from a Kafka outbox; the mailer sends emails from its own, whose
#: crash windows tests/unit/mailer and tests/integration/test_mailer.py cover.
KAFKA_SENDERS = ("router", "notifier", "ledger", "deadletters")


@pytest.mark.parametrize("victim", KAFKA_SENDERS)
def test_a_service_killed_between_its_commit_and_its_send_loses_nothing(
    fault_bus: FaultBus, victim: str
) -> None:
    """The worst window: the batch's state (and outbox) committed, nothing sent, no offset committed.
    The fault point makes the service exit there (as kill -9 would); restarted, it re-sends the same
    event ids and the ledger keeps each once (the dead-letter archive: it keeps each dead letter once)."""
    seeds = {"router": 201, "notifier": 202, "ledger": 203, "deadletters": 204}  # 204: one intake rejected
    events, expected = journeys(80, seed=seeds[victim])
    fault_bus.start_armed(victim, f"{victim}:after_commit")
    publisher = stream(fault_bus, events, per_second=80)
    assert fault_bus.wait_exit(victim, 60) == 70, f"{victim} never reached its fault point"
    fault_bus.start(victim)
    publisher.join(timeout=60)
    fault_bus.assert_exactly_once(expected)
    assert_no_valid_event_dead_lettered(fault_bus, events, expected)
    if victim == "deadletters":  # the router's refusals of this test's intakes reached the archive
        rejected = expected.decisions["rejected"]
        assert rejected and _archived_refusals(fault_bus, events, rejected) == rejected


def _archived_refusals(bus: FaultBus, events: list[Event], want: int, timeout_s: float = 60.0) -> int:
    """How many of these events the archive holds as dead letters of the rules' refusal, once `want`
    are there or after `timeout_s`."""
    ours = {str(event.event_id) for event in events}
    found: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while len(found) < want and time.monotonic() < deadline:
        time.sleep(0.5)
        with DeadLetterStore(bus.deadletters_url) as store:
            for letter in store.list(reason="intake_rejected"):
                event_id = str(codec.decode(store.original(letter.event_id)[1]).event_id)
                if event_id in ours:
                    found.add(event_id)
    return len(found)


def test_failed_sends_are_retried_and_nothing_is_dead_lettered(fault_bus: FaultBus) -> None:
    fault_bus.start_armed("router", "router:send_fails=4")
    fault_bus.supervisor.wait_metrics("router", fault_bus.ports["router"], timeout_s=90)
    fault_bus.wait_ready("router")
    events, expected = journeys(60, seed=211)
    stream(fault_bus, events, per_second=60).join(timeout=60)
    fault_bus.assert_exactly_once(expected)
    assert scrape(fault_bus.ports["router"]).get("cepbus_batches_retried_total", 0.0) >= 1.0
    assert_no_valid_event_dead_lettered(fault_bus, events, expected)
    fault_bus.kill("router")  # disarmed for the next tests
    fault_bus.start("router")


def _readiness(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_a_router_database_stalled_beyond_its_busy_timeout_pauses_the_router_and_loses_nothing(
    fault_bus: FaultBus,
) -> None:
    """Another writer holds router.db for 8 s, far beyond the router's 1 s busy timeout: the router
    must retry (partitions paused, readiness 503, cepbus_route_blocked 1), dead-letter nothing valid,
    and catch up once the database is back."""
    fault_bus.wait_ready("router")
    events, expected = journeys(80, seed=221)
    holder = _hold_sqlite_write_lock(fault_bus.ledger_path.with_name("router.db"), seconds=8.0)
    stream(fault_bus, events, per_second=80).join(timeout=60)
    deadline = time.monotonic() + 7
    blocked = (200, "")
    while time.monotonic() < deadline and blocked[0] != 503:
        blocked = _readiness(fault_bus.ports["router"])
        time.sleep(0.2)
    assert blocked[0] == 503 and "retrying" in blocked[1], blocked
    assert scrape(fault_bus.ports["router"]).get("cepbus_route_blocked", 0.0) >= 1.0
    assert holder.is_alive(), "the database was released before the check: the stall proved nothing"
    holder.join()
    fault_bus.assert_exactly_once(expected)
    assert _readiness(fault_bus.ports["router"])[0] == 200
    assert_no_valid_event_dead_lettered(fault_bus, events, expected)


def test_an_oversized_message_becomes_a_dead_letter_that_fits(fault_bus: FaultBus) -> None:
    """A 999,802-byte message made a dead letter over the producer's limit: the dead letter was never
    written. Now it keeps a prefix with the digest and size, and the partition goes on."""
    from confluent_kafka import Producer

    person = f"p-big-{uuid.uuid4().hex[:8]}"
    big = b"\xc3\x01" + uuid.uuid4().bytes + b"z" * 999_784
    assert len(big) == 999_802
    digest = hashlib.sha256(big).hexdigest()
    producer = Producer({"bootstrap.servers": fault_bus.bootstrap, "message.max.bytes": 2_000_000})
    producer.produce(INTAKE_REGISTERED.name, big, person.encode())
    assert producer.flush(30) == 0
    del producer
    after = intake(person=person)
    with fault_bus.publisher() as publisher:
        publisher.publish(after)
    assert not fault_bus.wait_for({str(after.event_id)}), "the partition is stuck behind the big message"
    deadline = time.monotonic() + 60
    found: list[StoredDeadLetter] = []
    # every consumer of the topic refuses it (the router and the ledger): each dead letter must fit
    while {letter.service for letter in found} != {"router", "ledger"} and time.monotonic() < deadline:
        found = [d for d in fault_bus.dead_letters() if d.original_sha256 == digest]
        time.sleep(0.5)
    assert {letter.service for letter in found} == {"router", "ledger"}, found
    for letter in found:
        assert letter.original_truncated and not letter.replayable
        assert letter.original_size == len(big)


def test_forged_statements_are_refused_by_either_runtime(fault_bus: FaultBus) -> None:
    """The forgeries of tests/integration/test_forgery.py, against this runtime: a referral request in
    the router's name signed by a partner, and an unsigned intake; each dead-lettered by every service
    that reads it, before any handler, and never appended; a genuine intake behind them flows."""
    from cepbus.contract.headers import SIGNATURE_HEADER
    from tests.integration.test_forgery import PARTNER, readers, referral_request

    forged = referral_request("cep-bus-router")
    [(_, partner_signature)] = signed_headers([forged], key_of=PARTNER)
    unsigned = intake()
    genuine = intake()
    sent = {
        hashlib.sha256(codec.encode(forged)).hexdigest(): ("misattributed", forged),
        hashlib.sha256(codec.encode(unsigned)).hexdigest(): ("unsigned", unsigned),
    }
    producer = KafkaProducer(bootstrap_servers=fault_bus.broker.bootstrap_list)
    try:
        for headers, event in (([(SIGNATURE_HEADER, partner_signature)], forged), ([], unsigned)):
            topic = "cep.referral.requested" if event is forged else INTAKE_REGISTERED.name
            producer.send(topic, codec.encode(event), event.partition_key(), headers=headers).get(30)
    finally:
        producer.close()
    with fault_bus.publisher() as publisher:
        publisher.publish(genuine)
    assert not fault_bus.wait_for({str(genuine.event_id)})
    expected = {
        (service, reason)
        for reason, event in sent.values()
        for service in readers("cep.referral.requested" if event is forged else INTAKE_REGISTERED.name)
    }
    found: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 60
    while found != expected and time.monotonic() < deadline:
        found = {
            (letter.service, letter.reason_code)
            for letter in fault_bus.dead_letters()
            if letter.original_sha256 in sent
        }
        time.sleep(0.5)
    assert found == expected
    assert fault_bus.ledger_counts({str(forged.event_id), str(unsigned.event_id)}) == Counter()


# -- poison messages (the session bus: nothing is killed) -----------------------------------------


def _wait_in_ledger(bus: RunningBus, event_ids: set[str], timeout_s: float = 60.0) -> set[str]:
    with SqlLedgerStore(bus.ledger_url) as store:
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
        # signed by their authors (the operator; the router's key for the request), so that what refuses
        # them is the domain, past the edge's signature check
        producer.send(
            INTAKE_REGISTERED.name, key=key, value=codec.encode(refused), headers=signed_headers([refused])
        ).get(timeout=10)
        producer.send(
            NOTICE_REQUESTED.name,
            key=key,
            value=codec.encode(unrenderable),
            headers=signed_headers([unrenderable]),
        ).get(timeout=10)
    finally:
        producer.close()
    after = [intake(person=person, boeth=True) for _ in range(3)]
    with bus.publisher() as publisher:
        publisher.publish_many(after)
    notices = {service_id(event.event_id, "notice-requested", "notice-issued") for event in after}
    assert not _wait_in_ledger(bus, notices | {str(e.event_id) for e in after}), "the partition is stuck"
    letters = _dead_letters_for(bus, poison)
    reasons = {(letter.service, letter.reason.split(":", 1)[0]) for letter in letters}
    assert ("router", "unknown_schema") in reasons  # the marker, then no schema we know
    assert ("router", "intake_rejected") in reasons
    assert ("notifier", "handler_error") in reasons


# -- PostgreSQL restarted mid-stream --------------------------------------------------------------


def _restart_postgres() -> None:
    """`pg_ctlcluster 15 main restart`: every connection is cut, the server is away for a moment."""
    result = subprocess.run(
        ["pg_ctlcluster", "15", "main", "restart"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def restartable_postgres() -> None:
    """The local cluster, which the test may restart (root and Debian's pg_ctlcluster needed)."""
    if not os.environ.get(POSTGRES_URL_ENV):
        pytest.skip(f"set {POSTGRES_URL_ENV} (scripts/start-postgres.sh)")
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        if os.environ.get("CEPBUS_REQUIRE_POSTGRES") == "1":
            pytest.fail("CEPBUS_REQUIRE_POSTGRES=1 but the cluster cannot be restarted (root, pg_ctlcluster)")
        pytest.skip("restarting PostgreSQL needs root and pg_ctlcluster")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_postgresql_restarted_mid_stream_loses_nothing(
    restartable_postgres: None, kafka_bootstrap: str, tmp_path: Path, runtime: str
) -> None:
    """The router's state, its referrals, the ledger and the dead letters on PostgreSQL; the server
    restarts while events flow. Batches fail on broken connections and are retried, never dead-lettered
    or acked."""
    with (
        fresh_schema("fault_router") as router_url,
        fresh_schema("fault_referrals") as referrals_url,
        fresh_schema("fault_ledger") as ledger_url,
        fresh_schema("fault_deadletters") as deadletters_url,
    ):
        env = {
            "CEPBUS_RUNTIME": runtime,
            "CEPBUS_ROUTER_DATABASE_URL": router_url,
            "CEPBUS_REFERRALS_DATABASE_URL": referrals_url,
            "CEPBUS_DEADLETTERS_DATABASE_URL": deadletters_url,
        }
        bus = start_fault_bus(kafka_bootstrap, tmp_path, env, ledger_url=ledger_url)
        try:
            events, expected = journeys(120, seed={"batch": 231, "faust": 232}[runtime])
            publisher = stream(bus, events, per_second=60)
            time.sleep(1.0)  # mid-stream
            _restart_postgres()
            publisher.join(timeout=90)
            bus.assert_exactly_once(expected, timeout_s=180)
            assert all(bus.supervisor.processes[s].alive() for s in SERVICES), "a service died"
            assert_no_valid_event_dead_lettered(bus, events, expected)
        finally:
            bus.supervisor.stop_all()


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
