"""Production refuses the ledger keys it should (issue #23, finding 8): no command generates a key in
production (`ledger checkpoint`, `export`, `prove` used to, at the development default path); a key
others can read, or one cep-bus generated for development (marked, even copied to an absolute path and
made owner-only), is refused with one line and exit 2. Development still generates its key, marked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cepbus.auditlog.note import Signer
from cepbus.trust.keyfiles import DEVELOPMENT_MARKER
from cepbus_app.cli import app
from services.ledger.settings import LedgerSettings
from services.ledger.signing import DEFAULT_KEY_PATH, SigningKeyError, load_signer
from services.ledger.store import SqlLedgerStore
from tests.support.factories import intake
from tests.support.ledger import ledger_record

ORIGIN = "cep-bus.test/ledger"
runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ledger with entries and no key, in a working directory of its own (the default key path is
    relative to it), with no key path configured."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", raising=False)
    monkeypatch.setenv("CEPBUS_LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("CEPBUS_LEDGER_ORIGIN", ORIGIN)
    with SqlLedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}") as store:
        store.append([ledger_record(intake()) for _ in range(3)])
    return tmp_path


def refused(result: Any, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert all(word in lines[0] for word in words), lines[0]


def checkpoints(workdir: Path) -> int:
    with SqlLedgerStore(f"sqlite:///{workdir / 'ledger.db'}") as store:
        return len(store.checkpoints())


@pytest.mark.parametrize(
    "command",
    [["ledger", "checkpoint"], ["ledger", "export", "--out", "b.json"], ["ledger", "prove", "--event", "x"]],
    ids=["checkpoint", "export", "prove"],
)
def test_no_command_generates_a_key_in_production(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("CEPBUS_ENV", "production")
    refused(runner.invoke(app, command), "production never generates one", "CEPBUS_LEDGER_SIGNING_KEY_PATH")
    assert not (workdir / DEFAULT_KEY_PATH).exists() and checkpoints(workdir) == 0
    with pytest.raises(SigningKeyError, match="never generates"):  # whatever a caller asks
        load_signer(LedgerSettings(), allow_generate=True)


def test_development_generates_a_marked_owner_only_key_that_production_refuses_anywhere(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = runner.invoke(app, ["ledger", "checkpoint"])  # development: generated on first use
    assert made.exit_code == 0, made.output
    generated = workdir / DEFAULT_KEY_PATH
    assert generated.stat().st_mode & 0o777 == 0o600
    assert generated.read_text().splitlines()[0] == DEVELOPMENT_MARKER
    assert load_signer(LedgerSettings()).name == ORIGIN  # the loader skips the marker line
    copied = workdir / "elsewhere" / "ledger.key"  # the attack: given by absolute path, made owner-only
    copied.parent.mkdir()
    shutil.copy(generated, copied)
    copied.chmod(0o600)
    monkeypatch.setenv("CEPBUS_ENV", "production")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(copied))
    refused(runner.invoke(app, ["ledger", "checkpoint"]), str(copied), "development key")
    assert checkpoints(workdir) == 1


@pytest.mark.parametrize(("mode", "words"), [(0o644, "every user"), (0o640, "group"), (0o604, "every user")])
def test_production_refuses_a_key_file_others_can_read(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, mode: int, words: str
) -> None:
    key = workdir / "prod.key"
    key.write_text(str(Signer.generate(ORIGIN)) + "\n")
    key.chmod(mode)
    if os.geteuid() == 0:  # a root-owned key may be group-read (a secret volume): own it as someone else
        os.chown(key, 65534, -1)
    monkeypatch.setenv("CEPBUS_ENV", "production")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(key))
    refused(runner.invoke(app, ["ledger", "checkpoint"]), str(key), words, "chmod 600")
    assert checkpoints(workdir) == 0
    key.chmod(0o600)  # the fix the line names
    signed = runner.invoke(app, ["ledger", "checkpoint"])
    assert signed.exit_code == 0, signed.output
    assert checkpoints(workdir) == 1


def test_a_key_that_is_no_key_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = workdir / "garbage.key"
    key.write_text("not a key\n")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(key))
    refused(runner.invoke(app, ["ledger", "checkpoint"]), str(key), "PRIVATE+KEY")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(workdir / "missing.key"))
    refused(runner.invoke(app, ["ledger", "checkpoint"]), "missing.key", "does not exist")
