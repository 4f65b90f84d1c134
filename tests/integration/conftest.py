"""The stream services as separate processes against the session's broker (one bus per session)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cepbus.runtime.admin import bus_topics, ensure_topics
from cepbus.runtime.settings import BrokerSettings
from cepbus.runtime.traffic import ENV
from cepbus_app.supervisor import SERVICES, Supervisor
from tests.conftest import free_port
from tests.support.bus import RunningBus, ledger_identity
from tests.support.mail import MailSink

#: Where the session mailer's emails link to (the inbox itself need not run for that).
MAIL_INBOX_BASE_URL = "https://inbox.cep-bus.test"


@pytest.fixture(scope="session", autouse=True)
def traffic_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every process of the integration run records its Kafka requests here (cepbus/runtime/traffic.py),
    for tests/integration/test_wiring_traffic.py; set before any bus starts, inherited by each process."""
    path = tmp_path_factory.mktemp("traffic") / "requests.jsonl"
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(ENV, None)


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    """The session's SMTP server (aiosmtpd): the session bus's mailer sends its emails there."""
    with MailSink(free_port()) as sink:
        yield sink


@pytest.fixture(scope="session")
def bus(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, mail_sink: MailSink
) -> Iterator[RunningBus]:
    workdir: Path = tmp_path_factory.mktemp("bus")
    ledger_url = f"sqlite:///{workdir / 'ledger.db'}"
    suffix = uuid.uuid4().hex[:8]  # fresh consumer groups, so a shared cluster replays nothing old
    ports = {service: free_port() for service in SERVICES}
    router_url = f"sqlite:///{workdir / 'router.db'}"
    env = {"CEPBUS_BOOTSTRAP_SERVERS": kafka_bootstrap, "CEPBUS_LEDGER_DATABASE_URL": ledger_url}
    env["CEPBUS_ROUTER_DATABASE_URL"] = router_url
    env["CEPBUS_NOTIFIER_DATABASE_URL"] = f"sqlite:///{workdir / 'notifier.db'}"
    deadletters_url = f"sqlite:///{workdir / 'deadletters.db'}"
    env["CEPBUS_DEADLETTERS_DATABASE_URL"] = deadletters_url
    mailer_url = f"sqlite:///{workdir / 'mailer.db'}"
    env |= {
        "CEPBUS_MAILER_DATABASE_URL": mailer_url,
        "CEPBUS_MAILER_SMTP_HOST": "127.0.0.1",
        "CEPBUS_MAILER_SMTP_PORT": str(mail_sink.port),
        "CEPBUS_MAILER_INBOX_BASE_URL": MAIL_INBOX_BASE_URL,
    }
    referrals_url, referrals_http_port = f"sqlite:///{workdir / 'referrals.db'}", free_port()
    env |= {
        "CEPBUS_REFERRALS_DATABASE_URL": referrals_url,
        "CEPBUS_REFERRALS_HTTP_PORT": str(referrals_http_port),
        "CEPBUS_REFERRALS_SWEEP_INTERVAL_S": "1",  # the deadline timer, so a test sees a breach soon
        "CEPBUS_LAG_INTERVAL_S": "1",  # lag gauges fresh enough for the live-Prometheus test
        "CEPBUS_LOG_LEVEL": "debug",  # each event's `event_received` line: one person's path in the logs
    }
    ledger_settings = ledger_identity(workdir, f"cep-bus.test/ledger-{suffix}")
    env |= {
        "CEPBUS_LEDGER_ORIGIN": ledger_settings.origin,
        "CEPBUS_LEDGER_SIGNING_KEY_PATH": str(ledger_settings.signing_key_path),
    }
    for service, port in ports.items():
        env[f"CEPBUS_{service.upper()}_METRICS_PORT"] = str(port)
        env[f"CEPBUS_{service.upper()}_GROUP_ID"] = f"cepbus-{service}-test-{suffix}"
    broker = BrokerSettings(bootstrap_servers=kafka_bootstrap)
    ensure_topics(broker, bus_topics())
    supervisor = Supervisor(log_dir=workdir / "logs", env=env)
    try:
        for service in SERVICES:
            # the router sends Confluent framing, the others the default single-object: every consumer
            # takes both, as on a bus moving from one framing to the other (test_confluent_and_trace.py)
            supervisor.start(service, {"CEPBUS_WIRE_FORMAT": "confluent"} if service == "router" else None)
        for service in SERVICES:
            supervisor.wait_metrics(service, ports[service], timeout_s=60)
        yield RunningBus(
            kafka_bootstrap,
            broker,
            ledger_url,
            ports,
            supervisor,
            router_url=router_url,
            ledger_settings=ledger_settings,
            referrals_url=referrals_url,
            referrals_http_port=referrals_http_port,
            deadletters_url=deadletters_url,
            mailer_url=mailer_url,
            mail=mail_sink,
        )
    finally:
        supervisor.stop_all()
