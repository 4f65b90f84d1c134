"""A bundle's period is signed (issue #23, finding 9): the ledger signs, with its checkpoint key, a note
over the period and the checkpoint it exported against (`cep-bus-ledger-bundle/2`). Editing the period
(which decides what a report from the bundle covers: the figures of other days) no longer verifies;
a period note of another checkpoint or key is refused; a `/1` bundle (or a `/2` downgraded to it) still
verifies, but no report uses its unsigned period."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cepbus.auditlog.bundle import FORMAT, FORMAT_V1, BundleError, SignedPeriod, verify_bundle
from cepbus.auditlog.note import Signer
from cepbus_app.cli import app
from tests.support.factories import intake
from tests.support.ledger import append_recorded, ledger_service_env

ORIGIN = "cep-bus.test/ledger"
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
THURSDAY = MONDAY + timedelta(days=3)
runner = CliRunner()


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Three intakes recorded on Monday, two on Thursday; a bundle of Monday's days."""
    db, signer = ledger_service_env(tmp_path, monkeypatch, ORIGIN)
    events = [(intake(occurred_at=MONDAY), MONDAY + timedelta(minutes=n)) for n in range(3)]
    events += [(intake(occurred_at=THURSDAY), THURSDAY + timedelta(minutes=n)) for n in range(2)]
    append_recorded(f"sqlite:///{db}", events)
    bundle = tmp_path / "monday.json"
    result = runner.invoke(
        app, ["ledger", "export", "--out", str(bundle), "--from", "2026-03-02", "--to", "2026-03-02"]
    )
    assert result.exit_code == 0, result.output
    return {"tmp": tmp_path, "signer": signer, "vkey": str(signer.verifier()), "bundle": bundle, "db": db}


def document(ledger: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(ledger["bundle"].read_text()))


def run(ledger: dict[str, Any], doc: dict[str, Any], *command: str) -> Any:
    path = ledger["tmp"] / "checked.json"
    path.write_text(json.dumps(doc))
    if command[0] == "verify":
        return runner.invoke(app, ["ledger", "verify", "--bundle", str(path), "--key", ledger["vkey"]])
    return runner.invoke(
        app, ["audit", "report", "--bundle", str(path), "--key", ledger["vkey"], *command[1:]]
    )


def one_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return str(lines[0])


def test_the_export_signs_its_period_and_the_verifier_says_so(ledger: dict[str, Any]) -> None:
    doc = document(ledger)
    assert doc["format"] == FORMAT == "cep-bus-ledger-bundle/2"
    text, _, _ = doc["period_note"].partition("\n\n")
    signed = SignedPeriod.parse(text + "\n")
    assert signed.days == ("2026-03-02", "2026-03-02") and signed.size == 5
    assert (signed.from_ms, signed.to_ms) == (doc["period"]["from_ms"], doc["period"]["to_ms"])
    verified = run(ledger, doc, "verify")
    assert (
        verified.exit_code == 0
        and "period: days 2026-03-02 to 2026-03-02, signed by the ledger" in verified.stdout
    )
    report = run(ledger, doc, "report")
    assert report.exit_code == 0 and json.loads(report.stdout)["intakes"]["total"] == 3


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param({"from_day": "2026-03-05", "to_day": "2026-03-05"}, id="other-days"),
        pytest.param({"from_day": "2026-02-01"}, id="days-widened"),
        pytest.param({"from_ms": 0}, id="instants-widened"),
        pytest.param({"from_ms": None, "to_ms": None, "from_day": None, "to_day": None}, id="opened"),
    ],
)
def test_an_edited_period_no_longer_verifies(ledger: dict[str, Any], edit: dict[str, Any]) -> None:
    """The attack: the same signed entries, another period, other figures (3 Monday intakes, 0 or 2)."""
    doc = document(ledger)
    doc["period"] = {**doc["period"], **edit}
    verified = run(ledger, doc, "verify")
    assert verified.exit_code == 1
    assert "period: not the period the ledger signed" in one_line(verified)
    report = run(ledger, doc, "report")
    assert report.exit_code == 1 and "no report from an unverified bundle" in one_line(report)
    without_days = {k: v for k, v in document(ledger)["period"].items() if k not in ("from_day", "to_day")}
    dropped = {**document(ledger), "period": without_days}  # the days dropped, the instants kept
    assert run(ledger, dropped, "verify").exit_code == 1


def test_a_period_note_of_another_checkpoint_or_another_key_is_refused(ledger: dict[str, Any]) -> None:
    genuine = document(ledger)
    append_recorded(
        f"sqlite:///{ledger['db']}", [(intake(occurred_at=THURSDAY), THURSDAY + timedelta(hours=1))]
    )
    later = ledger["tmp"] / "later.json"
    days = ["--from", "2026-03-05", "--to", "2026-03-05"]
    assert runner.invoke(app, ["ledger", "export", "--out", str(later), *days]).exit_code == 0
    moved = {**genuine, "period": json.loads(later.read_text())["period"]}
    moved["period_note"] = json.loads(later.read_text())["period_note"]  # Thursday's, signed for size 6
    assert "period_note: signed for the checkpoint of size 6" in one_line(run(ledger, moved, "verify"))
    forged = copy.deepcopy(genuine)
    text, _, _ = forged["period_note"].partition("\n\n")
    forged["period_note"] = Signer.generate(ORIGIN).sign(text.replace("2026-03-02", "2026-03-05") + "\n")
    forged["period"] = {**forged["period"], "from_day": "2026-03-05", "to_day": "2026-03-05"}
    assert "period_note: no signature by the key" in one_line(run(ledger, forged, "verify"))
    missing = {k: v for k, v in genuine.items() if k != "period_note"}
    assert "carries its period and its signed period_note" in one_line(run(ledger, missing, "verify"))
    with pytest.raises(BundleError, match="period_note: not a cep-bus period note"):
        verify_bundle(
            {**genuine, "period_note": genuine["checkpoint"]}, ledger["vkey"]
        )  # a checkpoint is no period


def test_a_v1_bundle_verifies_but_no_report_uses_its_unsigned_period(ledger: dict[str, Any]) -> None:
    """A bundle from before the period was signed, or a /2 downgraded to /1 to drop the signature: its
    entries still verify, but a report refuses its period (exit 2, one line) and asks for the days."""
    downgraded = {k: v for k, v in document(ledger).items() if k != "period_note"}
    downgraded["format"] = FORMAT_V1
    downgraded["period"] = {
        **downgraded["period"],
        "from_day": "2026-03-05",
        "to_day": "2026-03-05",
    }  # edited
    verified = run(ledger, downgraded, "verify")
    assert verified.exit_code == 0 and "NOT covered by a signature" in verified.stdout
    refused = run(ledger, downgraded, "report")
    assert refused.exit_code == 2 and "outside any signature" in one_line(refused)
    chosen = run(ledger, downgraded, "report", "--from", "2026-03-05", "--to", "2026-03-05")
    assert chosen.exit_code == 0 and json.loads(chosen.stdout)["intakes"]["total"] == 2
    # an unbounded /1 period reports on the whole signed log, and says so
    opened = {**downgraded, "period": {"from_ms": None, "to_ms": None}}
    whole = json.loads(run(ledger, opened, "report").stdout)
    assert whole["intakes"]["total"] == 5 and whole["period"]["cut"] == "none"
    assert whole["source"]["period_signed"] is False
    with pytest.raises(BundleError, match="carries none"):
        verify_bundle({**downgraded, "period_note": document(ledger)["period_note"]}, ledger["vkey"])
