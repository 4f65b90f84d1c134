"""`cep-bus deadletters list|show|replay` on a dead-letter store, with a recording sender for the broker."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cepbus.contract import codec
from cepbus.contract.models import DeadLetter, IntakeRegistered
from cepbus.contract.topics import INTAKE_REGISTERED
from cepbus.runtime.messages import Incoming
from cepbus.runtime.processing import EventProcessor
from cepbus_app.cli import app
from services.deadletters import cli as deadletters_cli
from services.deadletters.store import DeadLetterStore
from tests.support.authorship import message
from tests.support.factories import intake

runner = CliRunner()
NOW_MS = 1_780_000_000_000  # 2026-05-28


class RecordingSender:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        self.fail = fail

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((topic, key, value, list(headers)))

    def close(self) -> None:
        pass


def letter_for(
    value: bytes, offset: int, reason: str = "intake_rejected", headers: tuple[tuple[str, bytes], ...] = ()
) -> DeadLetter:
    processor = EventProcessor("router", "cep-bus-router")
    out = processor.dead_letter(
        Incoming(INTAKE_REGISTERED.name, 0, offset, b"p-1", value, headers), reason, "why", "Rejected"
    )
    assert isinstance(out.event, DeadLetter)
    return out.event


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'deadletters.db'}"


@pytest.fixture
def sender(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingSender]:
    recording = RecordingSender()
    monkeypatch.setattr(deadletters_cli, "sender_factory", lambda: recording)
    yield recording


@pytest.fixture
def letters(url: str) -> list[DeadLetter]:
    signed = message(intake())  # as its operator signed it
    made = [
        letter_for(signed.value, 1, headers=signed.headers),
        letter_for(b"not avro", 2, "bad_marker"),
        letter_for(b"\xc3\x01" + b"z" * 999_800, 3, "bad_marker"),  # oversize: a prefix is kept
    ]
    with DeadLetterStore(url) as store:
        store.record(made[:2], NOW_MS)
        store.record(made[2:], NOW_MS + 60_000)
    return made


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_filters_by_reason_and_time_and_speaks_json(url: str, letters: list[DeadLetter]) -> None:
    code, out, _ = run("deadletters", "list", "--database-url", url)
    assert code == 0 and "3 dead letter(s)" in out and "oversize" in out
    code, out, _ = run("deadletters", "list", "--reason", "bad_marker", "--json", "--database-url", url)
    listed = json.loads(out)
    assert code == 0 and {item["event_id"] for item in listed} == {str(d.event_id) for d in letters[1:]}
    assert [item["replayable"] for item in listed] == [True, False]
    assert listed[1]["original_size"] == 999_802 and listed[1]["original_truncated"] is True
    since = "2026-05-28T20:27:00"  # between the two record times
    code, out, _ = run("deadletters", "list", "--since", since, "--json", "--database-url", url)
    assert [item["event_id"] for item in json.loads(out)] == [str(letters[2].event_id)]
    code, _, err = run("deadletters", "list", "--since", "last tuesday", "--database-url", url)
    assert code == 2 and "neither a duration" in err


def test_show_decodes_the_original_and_names_an_unknown_id(url: str, letters: list[DeadLetter]) -> None:
    code, out, _ = run("deadletters", "show", str(letters[0].event_id), "--json", "--database-url", url)
    shown = json.loads(out)
    assert code == 0 and shown["original"]["event_type"] == IntakeRegistered.avro_name
    assert shown["original"]["event"]["envelope"]["event_id"] == str(
        codec.decode(letters[0].original_value).envelope.event_id
    )
    code, out, _ = run("deadletters", "show", str(letters[1].event_id), "--database-url", url)
    assert code == 0 and "undecodable" in out and "bad_marker" in out
    code, _, err = run("deadletters", "show", "no-such-id", "--database-url", url)
    assert code == 2 and "no dead letter no-such-id" in err


def test_replay_sends_the_original_bytes_to_their_topic_once_per_reason_run(
    url: str, letters: list[DeadLetter], sender: RecordingSender
) -> None:
    code, out, _ = run("deadletters", "replay", str(letters[0].event_id), "--database-url", url)
    assert code == 0 and "1 replayed" in out
    topic, key, value, headers = sender.sent[0]
    assert (topic, key, value) == (INTAKE_REGISTERED.name, b"p-1", letters[0].original_value)
    # the author's own signature goes back with its bytes: the consumer verifies it as any event's
    assert letters[0].original_signature is not None
    assert headers == [
        ("cepbus-replay-of", str(letters[0].event_id).encode()),
        ("cepbus-signature", letters[0].original_signature),
    ]
    with DeadLetterStore(url) as store:
        stored = store.get(str(letters[0].event_id))
        assert stored is not None and stored.replay_count == 1 and stored.replayed_at_ms is not None

    # by reason: neither bytes that are no event (they would only fail again) nor the oversize one
    code, out, err = run("deadletters", "replay", "--reason", "bad_marker", "--database-url", url)
    assert code == 3 and "0 replayed, 2 not replayable" in out and "only a prefix is kept" in err
    assert "is no event a service consumes" in err and len(sender.sent) == 1
    code, out, _ = run("deadletters", "replay", "--reason", "intake_rejected", "--database-url", url)
    assert code == 0 and "nothing to replay" in out and len(sender.sent) == 1  # already replayed


def test_replay_that_the_broker_does_not_acknowledge_is_not_recorded(
    url: str, letters: list[DeadLetter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deadletters_cli, "sender_factory", lambda: RecordingSender(fail=True))
    code, _, err = run("deadletters", "replay", str(letters[0].event_id), "--database-url", url)
    assert code == 4 and "did not acknowledge" in err and "Traceback" not in err
    with DeadLetterStore(url) as store:
        stored = store.get(str(letters[0].event_id))
        assert stored is not None and stored.replay_count == 0


def test_replay_needs_one_id_or_a_reason(url: str, letters: list[DeadLetter]) -> None:
    code, _, err = run("deadletters", "replay", "--database-url", url)
    assert code == 2 and "give one dead letter id or --reason" in err
    code, _, err = run("deadletters", "replay", "nope", "--database-url", url)
    assert code == 2 and "no dead letter nope" in err


def test_a_replay_that_failed_again_is_not_replayed_by_reason_unless_again(
    url: str, sender: RecordingSender
) -> None:
    processor = EventProcessor("router", "cep-bus-router")
    signed = message(intake())
    refailed = processor.dead_letter(
        Incoming(
            INTAKE_REGISTERED.name,
            0,
            9,
            b"p-1",
            signed.value,
            (("cepbus-replay-of", b"dl-first"), *signed.headers),
        ),
        "bad_marker",
        "why",
        "DecodeError",
    ).event
    assert isinstance(refailed, DeadLetter) and refailed.replay_of == "dl-first"
    with DeadLetterStore(url) as store:
        store.record([refailed], NOW_MS)
    code, out, _ = run("deadletters", "list", "--database-url", url)
    assert "re-failure" in out
    code, out, _ = run("deadletters", "replay", "--reason", "bad_marker", "--database-url", url)
    assert code == 0 and "nothing to replay" in out and sender.sent == []
    code, out, _ = run("deadletters", "replay", "--reason", "bad_marker", "--again", "--database-url", url)
    assert code == 0 and [s[2] for s in sender.sent] == [signed.value]
