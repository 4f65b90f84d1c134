"""Progress bars (issue #15): silent off a terminal or with CEPBUS_PROGRESS=0, a bar with its total on
stderr's terminal, never a byte on stdout; `ledger verify`, `export` and `audit report` give the same
results and the same stdout with and without it."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cepbus.auditlog import bundle as bundle_module
from cepbus.auditlog.bundle import export_bundle
from cepbus.auditlog.note import Signer
from cepbus.progress import ENV_VAR, progress, progress_enabled, track
from cepbus_app.cli import app
from cepbus_app.demo.loop import wait_until_known
from services.ledger import store as store_module
from services.ledger.audit_cli import ledger_report
from services.ledger.store import SqlLedgerStore
from tests.support.factories import intake
from tests.support.ledger import ledger_record

ROOT = Path(__file__).resolve().parents[3]


class TerminalText(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def terminal() -> Console:
    return Console(force_terminal=True, file=io.StringIO(), width=100, color_system=None)


def written(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_VAR, "TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


# -- the helper ------------------------------------------------------------------------------------


def test_off_a_terminal_nothing_is_shown_nor_written(capsys: pytest.CaptureFixture[str]) -> None:
    assert not progress_enabled()  # pytest's captured stderr is no terminal
    with progress("verifying ledger entries", 3) as update:
        assert update is None  # the callee's hook is skipped altogether
    items = [1, 2, 3]
    assert track(items, "reading ledger entries", 3) is items
    assert capsys.readouterr() == ("", "")


def test_on_a_terminal_the_bar_shows_its_description_and_total() -> None:
    console = terminal()
    with progress("verifying ledger entries", 7, console=console) as update:
        assert update is not None
        update(3)
        update(7)
    text = written(console)
    assert "verifying ledger entries" in text and "7/7" in text


def test_track_counts_the_items_it_passes_on_unchanged() -> None:
    console = terminal()
    assert list(track(range(250), "reading ledger entries", 250, console=console)) == list(range(250))
    assert "250/250" in written(console)


def test_an_unknown_total_shows_the_count() -> None:
    console = terminal()
    with progress("ledger entries", console=console) as update:
        assert update is not None
        update(3)
    assert "3/?" in written(console)


@pytest.mark.parametrize("value", ["0", "false", "OFF", "no"])
def test_switched_off_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_VAR, value)
    console = terminal()
    with progress("verifying ledger entries", 7, console=console) as update:
        assert update is None
    items = [1, 2]
    assert track(items, "reading", 2, console=console) is items
    assert written(console) == ""


def test_the_default_bar_is_on_stderr_never_on_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    err, out = TerminalText(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    with progress("exporting ledger entries", 2) as update:
        assert update is not None
        update(2)
    assert "exporting ledger entries" in err.getvalue() and "2/2" in err.getvalue()
    assert out.getvalue() == ""


def test_the_demo_wait_reports_how_many_entries_the_ledger_holds() -> None:
    held: set[str] = set()
    polls: list[int] = []

    def known(ids: set[str]) -> set[str]:
        held.update(sorted(ids)[:2])  # two more entries reach the ledger at each poll
        return ids & held

    assert wait_until_known(known, ["a", "b", "c", "d", "e"], timeout_s=5.0, progress=polls.append) == set()
    assert polls == [2, 4, 5]


# -- the commands ----------------------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    db, key = tmp_path / "ledger.db", tmp_path / "signing.key"
    signer = Signer.generate("cep-bus.test/ledger")
    key.write_text(str(signer) + "\n")
    env = {
        "CEPBUS_LEDGER_DATABASE_URL": f"sqlite:///{db}",
        "CEPBUS_LEDGER_SIGNING_KEY_PATH": str(key),
        "CEPBUS_LEDGER_ORIGIN": "cep-bus.test/ledger",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    events = [intake(person=f"psn-{i % 4}", region=("11", "84", "53")[i % 3]) for i in range(11)]
    with SqlLedgerStore(env["CEPBUS_LEDGER_DATABASE_URL"]) as store:
        store.append([
            ledger_record(e) for e in events
        ])  # fmt: skip
        store.checkpoint(signer)
        root = store.root()
    return {
        "url": env["CEPBUS_LEDGER_DATABASE_URL"],
        "env": env,
        "signer": signer,
        "root": root,
        "tmp": tmp_path,
    }


def test_off_a_terminal_the_commands_print_exactly_their_result(ledger: dict[str, Any]) -> None:
    runner = CliRunner()
    verified = runner.invoke(app, ["ledger", "verify"])
    assert verified.exit_code == 0, verified.output
    assert verified.stdout == f"ledger verified: 11 entries, root {ledger['root'].hex()}\n"
    assert verified.stderr == ""
    out = ledger["tmp"] / "bundle.json"
    exported = runner.invoke(app, ["ledger", "export", "--out", str(out), "--no-checkpoint"])
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.startswith(f"wrote {out}: 11 entries, checkpoint root ")
    assert exported.stdout.count("\n") == 1 and exported.stderr == ""
    reported = runner.invoke(app, ["audit", "report"])
    assert reported.exit_code == 0, reported.output
    assert json.loads(reported.stdout)["source"]["tree_size"] == 11  # stdout is the JSON document, whole
    assert reported.stderr == ""


def test_verify_and_export_give_the_same_results_with_progress(
    ledger: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PROGRESS_EVERY", 4)
    monkeypatch.setattr(bundle_module, "_PROGRESS_EVERY", 4)
    verifier = ledger["signer"].verifier()
    with SqlLedgerStore(ledger["url"]) as store:
        verified: list[int] = []
        assert store.verify(verifier, progress=verified.append) == store.verify(verifier)
        latest = store.latest_checkpoint()
        assert latest is not None
        exported: list[int] = []
        with_bar = export_bundle(store, latest, verifier, progress=exported.append)
        assert with_bar == export_bundle(store, latest, verifier)
    assert verified == [4, 8, 11] and exported == [4, 8, 11]


def test_the_audit_report_is_the_same_with_its_bar(
    ledger: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = ledger_report(ledger["url"], region=None, from_ms=None, to_ms=None)
    err = TerminalText()
    monkeypatch.setattr(sys, "stderr", err)
    shown = ledger_report(ledger["url"], region=None, from_ms=None, to_ms=None)
    assert shown == silent
    assert "reading ledger entries" in err.getvalue() and "11/11" in err.getvalue()


def _run_with_terminal_stderr(args: list[str], env: dict[str, str]) -> tuple[str, str, int]:
    """Run `cep-bus ARGS` with stderr on a pseudo-terminal and stdout on a pipe: (stdout, terminal, rc)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cepbus_app", *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, **env},
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert process.stdout is not None
    stdout = process.stdout.read().decode()
    process.stdout.close()
    return stdout, screen.decode(errors="replace"), process.wait(timeout=30)


@pytest.fixture
def terminal_env(ledger: dict[str, Any]) -> dict[str, str]:
    return {**ledger["env"], "TERM": "xterm-256color", "COLUMNS": "100"}


def test_on_a_terminal_verify_shows_its_bar_and_stdout_stays_the_result(
    ledger: dict[str, Any], terminal_env: dict[str, str]
) -> None:
    stdout, screen, code = _run_with_terminal_stderr(["ledger", "verify"], terminal_env)
    assert code == 0, screen
    assert stdout == f"ledger verified: 11 entries, root {ledger['root'].hex()}\n"
    assert "verifying ledger entries" in screen and "11/11" in screen
    stdout_off, screen_off, code_off = _run_with_terminal_stderr(
        ["ledger", "verify"], {**terminal_env, ENV_VAR: "0"}
    )
    assert (code_off, stdout_off, screen_off) == (0, stdout, "")
