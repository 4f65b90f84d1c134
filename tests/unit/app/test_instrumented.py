"""Test instruments come from the composition root, never from the environment inside `cepbus/`: the
environment arms them only through `cepbus_app.instrumented`, and production refuses fault points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cepbus.runtime import faults, traffic
from cepbus.runtime.faults import ArmedFaults, InjectedSendFailure
from cepbus.runtime.instruments import NoFaults, NotRecorded
from cepbus.sdk.publisher import Publisher
from cepbus_app.instrumented import instruments_from, main, service_builder
from tests.support.factories import intake
from tests.support.fakes import RecordingProducer


def test_nothing_is_attached_when_the_environment_asks_for_nothing() -> None:
    instruments = instruments_from({})
    assert isinstance(instruments.requests, NotRecorded) and isinstance(instruments.faults, NoFaults)


def test_the_traffic_log_and_fault_points_come_from_the_environment(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    instruments = instruments_from({traffic.ENV: str(log), faults.ENV: "router:send_fails=2"})
    instruments.requests.record("cepbus-router", "Write", "topic", "cep.intake.decided")
    instruments.requests.record("cepbus-router", "Write", "topic", "cep.intake.decided")  # once a process
    [line] = [json.loads(text) for text in log.read_text().splitlines()]
    assert (line["principal"], line["operation"], line["name"]) == (
        "cepbus-router",
        "Write",
        "cep.intake.decided",
    )
    assert isinstance(instruments.faults, ArmedFaults)
    for _ in range(2):
        with pytest.raises(InjectedSendFailure):
            instruments.faults.before_send("router")
    instruments.faults.before_send("router")  # the two failures are spent
    instruments.faults.before_send("notifier")  # armed for the router only


def test_production_ignores_fault_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEPBUS_ENV", "production")
    assert isinstance(instruments_from({faults.ENV: "router:after_commit"}).faults, NoFaults)


def test_the_sdk_send_path_reads_no_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable set, a Publisher built without `requests` records nothing: only what is passed in
    records (the behaviour the issue asked to remove was a lookup of the variable at each send)."""
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv(traffic.ENV, str(log))
    Publisher(producer=RecordingProducer()).publish(intake())
    assert not log.exists()
    Publisher(producer=RecordingProducer(), requests=traffic.TrafficLog(log)).publish(intake())
    assert json.loads(log.read_text())["operation"] == "Write"


def test_an_unknown_service_is_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2 and "unknown service 'nope'" in capsys.readouterr().err
    name, build = service_builder("notifier")
    assert name == "notifier" and callable(build)
