"""The dead-letter service: `cep.deadletter` in, each dead letter kept once in its own archive; what it
cannot read becomes a dead letter it may send (or it would block on it for good)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cepbus.contract import codec
from cepbus.contract.models import DeadLetter
from cepbus.contract.topics import DEAD_LETTER, INTAKE_REGISTERED
from cepbus.contract.wiring import check_writes
from cepbus.runtime.messages import Incoming
from cepbus.runtime.processing import EventProcessor
from services.deadletters.app import SERVICE, build_service
from services.deadletters.settings import DeadLetterSettings
from services.deadletters.store import DeadLetterStore

NOW_MS = 1_780_000_000_000


def a_dead_letter(offset: int) -> DeadLetter:
    out = EventProcessor("router", "cep-bus-router").dead_letter(
        Incoming(INTAKE_REGISTERED.name, 0, offset, b"p-1", b"not avro"), "bad_marker", "why", "DecodeError"
    )
    assert isinstance(out.event, DeadLetter)
    return out.event


def test_the_service_keeps_each_dead_letter_once_and_dead_letters_what_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'deadletters.db'}"
    monkeypatch.setenv("CEPBUS_DEADLETTERS_DATABASE_URL", url)
    definition = build_service()
    try:
        assert definition.name == SERVICE and definition.topics_read() == [DEAD_LETTER.name]
        [route] = definition.routes
        letter = a_dead_letter(7)
        value = codec.encode(letter)
        batch = [
            Incoming(DEAD_LETTER.name, 0, 1, b"p-1", value),
            Incoming(DEAD_LETTER.name, 0, 2, b"p-1", value),  # the same dead letter, redelivered
            Incoming(DEAD_LETTER.name, 0, 3, None, b"garbage"),
        ]
        outputs = EventProcessor(SERVICE, definition.producer_org_id).decide(route, batch)
        [refused] = outputs
        assert refused.topic == DEAD_LETTER.name and isinstance(refused.event, DeadLetter)
        assert refused.event.service == SERVICE and refused.event.source_offset == 3
        check_writes(SERVICE, [refused.topic])  # its wiring lets it send that dead letter
    finally:
        for hook in definition.on_stop:
            hook()
    with DeadLetterStore(url) as store:
        assert [stored.event_id for stored in store.list()] == [str(letter.event_id)]


def test_the_archive_defaults_to_a_database_of_its_own() -> None:
    defaults = {name: field.default for name, field in DeadLetterSettings.model_fields.items()}
    assert defaults["database_url"] == "sqlite:///.cepbus/deadletters.db"
    assert (defaults["group_id"], defaults["metrics_port"]) == ("cepbus-deadletters", 9106)


def test_the_deadletters_command_reads_the_services_database_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cepbus_app.cli import app

    url = f"sqlite:///{tmp_path / 'archive.db'}"
    with DeadLetterStore(url) as store:
        store.record([a_dead_letter(1)], NOW_MS)
    result = CliRunner().invoke(app, ["deadletters", "list"], env={"CEPBUS_DEADLETTERS_DATABASE_URL": url})
    assert result.exit_code == 0 and "1 dead letter(s)" in result.stdout
