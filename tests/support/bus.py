"""The running bus an integration test talks to, and what tests ask of it: wait until the ledger holds
some events, read the dead letters (from the topic; the dead-letter service keeps them at
`RunningBus.deadletters_url`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from cepbus.auditlog.note import Signer
from cepbus.contract import codec
from cepbus.contract.models import DeadLetter, ReferralUpdateVerdict
from cepbus.contract.topics import DEAD_LETTER
from cepbus.runtime.instruments import KafkaRequests, NotRecorded
from cepbus.runtime.settings import BrokerSettings
from cepbus.runtime.traffic import ENV as TRAFFIC_LOG_ENV
from cepbus.runtime.traffic import TrafficLog
from cepbus.sdk.publisher import Publisher
from cepbus_app.demo.loop import wait_until_known
from cepbus_app.supervisor import Supervisor
from services.ledger.settings import LedgerSettings
from services.ledger.store import ErasedError, SqlLedgerStore
from tests.support.mail import MailSink


def session_requests() -> KafkaRequests:
    """The session's record of Kafka requests (tests/integration/conftest.py sets where it goes), for the
    SDK clients the tests run in this process; the services record theirs themselves."""
    path = os.environ.get(TRAFFIC_LOG_ENV)
    return TrafficLog(path) if path else NotRecorded()


@dataclass
class RunningBus:
    bootstrap: str
    broker: BrokerSettings
    ledger_url: str
    ports: dict[str, int]
    supervisor: Supervisor
    router_url: str = ""
    ledger_settings: LedgerSettings | None = None  # its own checkpoint origin and signing key
    referrals_url: str = ""  # the router's referral store (#4)
    referrals_http_port: int = 0
    deadletters_url: str = ""  # the dead-letter service's archive
    mailer_url: str = ""  # the mailer's store (its mail outbox)
    mail: MailSink | None = None  # the SMTP server the mailer sends to
    requests: KafkaRequests = field(default_factory=session_requests)

    def publisher(self, **options: Any) -> Publisher:
        """A Publisher on this bus whose requests go to the session's record (the ACL test)."""
        return Publisher(self.broker, requests=self.requests, **options)


def ledger_identity(workdir: Path, origin: str) -> LedgerSettings:
    """A checkpoint origin and signing key of its own, so that two ledgers on one broker (the session
    bus, the fault tests' bus) publish checkpoints an auditor can tell apart."""
    key_path = workdir / "ledger-signing.key"
    key_path.write_text(str(Signer.generate(origin)) + "\n")
    return LedgerSettings(origin=origin, signing_key_path=key_path)


def wait_for_ids(bus: RunningBus, event_ids: set[str], timeout_s: float = 60.0) -> set[str]:
    with SqlLedgerStore(bus.ledger_url) as store:
        return wait_until_known(store.known_event_ids, event_ids, timeout_s)


def dead_letters(
    bus: RunningBus,
    timeout_s: float = 30.0,
    want: int = 1,
    where: Callable[[DeadLetter], bool] = lambda d: True,
) -> list[DeadLetter]:
    consumer = KafkaConsumer(bootstrap_servers=bus.broker.bootstrap_list, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(DEAD_LETTER.name, p) for p in consumer.partitions_for_topic(DEAD_LETTER.name)
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[DeadLetter] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    letter = codec.decode(record.value)
                    assert isinstance(letter, DeadLetter)
                    if where(letter):
                        found.append(letter)
        return found
    finally:
        consumer.close()


def wait_for_applied_verdicts(bus: RunningBus, update_ids: set[str], timeout_s: float = 60.0) -> set[str]:
    """Until the ledger holds an applied verdict with its update's digest for each of these updates;
    returns those still missing."""
    deadline = time.monotonic() + timeout_s
    missing = set(update_ids)
    while missing and time.monotonic() < deadline:
        with SqlLedgerStore(bus.ledger_url) as store:
            for entry in store.entries():
                if entry.record.facts.get("verdict") != "applied":
                    continue
                # the update's id is sealed (a dictionary over the directory turns it into the partner)
                try:
                    verdict = codec.decode(store.open_payload(entry.index))
                except ErasedError:  # a person another test erased
                    continue
                assert isinstance(verdict, ReferralUpdateVerdict) and verdict.update_digest is not None
                missing.discard(verdict.update_event_id)
        time.sleep(0.5)
    return missing
