"""A checkpoint carries the time the ledger signed it, inside the signature, and a verifier bounds its age
(issue #23, finding 9: an older checkpoint verified as if it were current). `ledger verify --bundle` and
`cep-bus-audit verify` print its size and signed time; `--not-older-than` refuses an old one (exit 1,
one line), and one that carries no time at all; checkpoints from before the time line still read."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cepbus.auditlog.bundle import export_bundle, verify_bundle
from cepbus.auditlog.cli import app as audit_app
from cepbus.auditlog.freshness import parse_duration
from cepbus.auditlog.note import Checkpoint, NoteError, Signer, open_checkpoint
from cepbus.auditlog.reading import StoredCheckpoint
from cepbus_app.cli import app
from services.ledger.store import SqlLedgerStore
from tests.support.factories import intake
from tests.support.ledger import ledger_record, ledger_service_env

ORIGIN = "cep-bus.test/ledger"
DAY_MS = 86_400_000
SIGNED_MS = 1_775_124_000_123  # 2026-04-02T10:00:00.123Z
runner = CliRunner()


def test_the_checkpoint_text_carries_its_signing_time_inside_the_signature(tmp_path: Path) -> None:
    signer = Signer.generate(ORIGIN)
    with SqlLedgerStore(f"sqlite:///{tmp_path / 'l.db'}", clock=lambda: SIGNED_MS) as store:
        store.append([ledger_record(intake())])
        made = store.checkpoint(signer)
    assert made is not None
    text, _, _ = made.note.partition("\n\n")
    assert text.splitlines()[3] == "time 2026-04-02T10:00:00Z"
    checkpoint = open_checkpoint(made.note, signer.verifier())
    assert checkpoint.signed_at_ms() == made.signed_at_ms == SIGNED_MS // 1000 * 1000
    moved = made.note.replace("time 2026-04-02T10:00:00Z", "time 2026-12-02T10:00:00Z")
    with pytest.raises(NoteError, match="does not verify"):  # a fresher time cannot be written in
        open_checkpoint(moved, signer.verifier())


def test_a_checkpoint_without_time_still_reads_and_bad_time_lines_are_refused() -> None:
    root = bytes(32)
    assert Checkpoint(ORIGIN, 3, root).signed_at_ms() is None
    assert Checkpoint.parse(Checkpoint(ORIGIN, 3, root).text()).extensions == ()
    for extensions in (
        ("time 2026-13-01T00:00:00Z",),
        ("time 2026-04-02 10:00:00",),
        ("time 2026-04-02T10:00:00Z", "time 2026-04-03T10:00:00Z"),
    ):
        with pytest.raises(NoteError, match="time"):
            Checkpoint(ORIGIN, 3, root, extensions).signed_at_ms()
    assert Checkpoint(ORIGIN, 3, root, ("other extension",)).signed_at_ms() is None


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86_400), ("7d", 604_800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "0d", "-1d", "1w", "1.5h", "7 d x", "99999999999d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.fixture
def old_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A bundle exported against a checkpoint the ledger signed ten days ago."""
    db, signer = ledger_service_env(tmp_path, monkeypatch, ORIGIN)
    ten_days_ago = int(time.time() * 1000) - 10 * DAY_MS
    with SqlLedgerStore(f"sqlite:///{db}", clock=lambda: ten_days_ago) as store:
        store.append([ledger_record(intake()) for _ in range(4)])
        store.checkpoint(signer)
    bundle = tmp_path / "old.json"
    exported = runner.invoke(app, ["ledger", "export", "--out", str(bundle), "--no-checkpoint"])
    assert exported.exit_code == 0, exported.output
    return {"bundle": bundle, "vkey": str(signer.verifier()), "signer": signer, "db": db, "tmp": tmp_path}


def verifiers(path: Path, vkey: str, *extra: str) -> list[Any]:
    """The same verification by both commands that run it."""
    return [
        runner.invoke(app, ["ledger", "verify", "--bundle", str(path), "--key", vkey, *extra]),
        runner.invoke(audit_app, ["verify", str(path), "--key", vkey, *extra]),
    ]


def one_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return str(lines[0])


def test_the_verifiers_print_size_and_signed_time_and_refuse_a_stale_checkpoint(
    old_bundle: dict[str, Any],
) -> None:
    path, vkey = old_bundle["bundle"], old_bundle["vkey"]
    for result in verifiers(path, vkey):
        assert result.exit_code == 0, result.output
        assert "checkpoint: size 4, signed at " in result.stdout and "(10 d 0 h ago)" in result.stdout
    for result in verifiers(path, vkey, "--not-older-than", "7d"):
        assert result.exit_code == 1
        line = one_line(result)
        assert line.startswith("STALE CHECKPOINT: the checkpoint was signed at ")
        assert "older than --not-older-than 7d" in line and "bundle verified" not in result.stdout
    for result in verifiers(path, vkey, "--not-older-than", "11d"):
        assert result.exit_code == 0, result.output
    for result in verifiers(path, vkey, "--not-older-than", "a week"):
        assert result.exit_code == 2 and "--not-older-than" in one_line(result)


def test_a_fresh_export_passes_a_tight_bound(old_bundle: dict[str, Any]) -> None:
    fresh = old_bundle["tmp"] / "fresh.json"
    with SqlLedgerStore(f"sqlite:///{old_bundle['db']}") as store:
        store.append([ledger_record(intake())])
    assert runner.invoke(app, ["ledger", "export", "--out", str(fresh)]).exit_code == 0  # signs one now
    for result in verifiers(fresh, old_bundle["vkey"], "--not-older-than", "1h"):
        assert result.exit_code == 0, result.output
        assert "checkpoint: size 5, signed at" in result.stdout


def test_a_bound_refuses_a_checkpoint_that_carries_no_time(old_bundle: dict[str, Any]) -> None:
    """A checkpoint from before the time line: it verifies, its age is unknown, so a bound refuses it."""
    signer: Signer = old_bundle["signer"]
    with SqlLedgerStore(f"sqlite:///{old_bundle['db']}") as store:
        timeless = Checkpoint(ORIGIN, 4, store.root(4))
        stored = StoredCheckpoint(timeless, signer.sign(timeless.text()), 0)
        document = export_bundle(store, stored, signer)
    assert verify_bundle(document, signer.verifier()).signed_at_ms is None
    path = old_bundle["tmp"] / "timeless.json"
    path.write_text(json.dumps(document))
    for result in verifiers(path, old_bundle["vkey"]):
        assert result.exit_code == 0 and "no signed time" in result.stdout
    for result in verifiers(path, old_bundle["vkey"], "--not-older-than", "3650d"):
        assert result.exit_code == 1 and "carries no signed time" in one_line(result)
