"""Audit periods and bundle exports select events by the time the ledger recorded them, never by the
`occurred_at` their sender claims (issue #23, finding 6): an event claimed in last month but recorded
today falls in today's period, not last month's; the claim is counted beside
(`events_claimed_outside_period`), so backdating shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cepbus.auditlog.bundle import export_bundle, verify_bundle
from cepbus.auditlog.context import reference_period
from cepbus.auditlog.report import build_report
from cepbus_app.cli import app
from services.ledger.store import SqlLedgerStore
from tests.support.factories import intake
from tests.support.ledger import append_recorded, ledger_service_env
from tests.unit.ledger.test_audit_report import MIN, T0, rec

ORIGIN = "cep-bus.test/ledger"
TODAY = datetime(2026, 3, 31, 10, 0, tzinfo=UTC)  # Tuesday 31 March 2026, 12:00 Paris
LAST_MONTH = TODAY - timedelta(days=30)  # Sunday 1 March


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def minutes(moment: datetime) -> float:
    return (ms(moment) - T0) / MIN


def day(moment: datetime) -> str:
    return moment.date().isoformat()


def test_an_event_claimed_last_month_but_recorded_today_is_in_todays_period() -> None:
    backdated = rec("IntakeRegistered", minutes(LAST_MONTH), recorded_min=minutes(TODAY), region_code="11")
    honest = rec("IntakeRegistered", minutes(TODAY), region_code="11")
    today, last_month = reference_period(day(TODAY), day(TODAY)), reference_period(day(LAST_MONTH), None)
    assert today is not None and last_month is not None
    report = build_report([backdated, honest], period=today)
    assert report["intakes"]["total"] == 2
    assert report["events_claimed_outside_period"] == 1  # the claim, shown beside
    last = build_report([backdated, honest], period=reference_period(day(LAST_MONTH), day(LAST_MONTH)))
    assert last["intakes"]["total"] == 0 and last["events_claimed_outside_period"] == 0
    # the same with instants (a bundle's own period)
    instants = build_report([backdated], from_ms=ms(TODAY) - 3_600_000, to_ms=ms(TODAY) + 3_600_000)
    assert instants["intakes"]["total"] == 1
    assert (
        build_report([backdated], from_ms=ms(LAST_MONTH) - 1, to_ms=ms(LAST_MONTH) + 1)["events_in_scope"]
        == 0
    )


def test_a_post_dated_event_is_counted_when_recorded_not_when_claimed() -> None:
    """Claimed a month ahead, recorded today: in today's figures (a sender cannot push its events out
    of the period being audited, nor into one not yet audited)."""
    ahead = rec(
        "IntakeRegistered", minutes(TODAY + timedelta(days=30)), recorded_min=minutes(TODAY), region_code="84"
    )
    report = build_report([ahead], period=reference_period(day(TODAY), day(TODAY)))
    assert report["intakes"]["by_region"] == {"84": 1} and report["events_claimed_outside_period"] == 1


@pytest.fixture
def backdated_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A ledger holding an intake claimed last month but recorded today, and an honest one of last month."""
    db, signer = ledger_service_env(tmp_path, monkeypatch, ORIGIN)
    honest = intake(person="p-honest", occurred_at=LAST_MONTH)
    backdated = intake(person="p-backdated", occurred_at=LAST_MONTH)
    append_recorded(f"sqlite:///{db}", [(honest, LAST_MONTH), (backdated, TODAY)])
    return {"db": db, "signer": signer, "honest": honest, "backdated": backdated, "tmp": tmp_path}


def test_an_export_carries_the_contents_of_what_the_ledger_recorded_in_the_period(
    backdated_ledger: dict[str, Any],
) -> None:
    signer, url = backdated_ledger["signer"], f"sqlite:///{backdated_ledger['db']}"
    with SqlLedgerStore(url) as store:
        store.checkpoint(signer)
        latest = store.latest_checkpoint()
        assert latest is not None
        document = export_bundle(store, latest, signer, from_ms=ms(TODAY) - 3_600_000, to_ms=ms(TODAY) + 1)
    with_content = [entry["content"]["event_id"] for entry in document["entries"] if "content" in entry]
    assert with_content == [str(backdated_ledger["backdated"].event_id)]
    assert verify_bundle(document, signer.verifier()).period_signed


def test_audit_report_from_the_database_and_from_a_bundle_select_by_recorded_day(
    backdated_ledger: dict[str, Any],
) -> None:
    runner, vkey = CliRunner(), str(backdated_ledger["signer"].verifier())
    bundle = backdated_ledger["tmp"] / "today.json"
    today = ["--from", day(TODAY), "--to", day(TODAY)]
    exported = runner.invoke(app, ["ledger", "export", "--out", str(bundle), *today])
    assert exported.exit_code == 0, exported.output
    for source in ([], ["--bundle", str(bundle), "--key", vkey]):
        report = json.loads(runner.invoke(app, ["audit", "report", *today, *source]).stdout)
        assert report["intakes"]["total"] == 1 and report["events_claimed_outside_period"] == 1
        last = ["--from", day(LAST_MONTH), "--to", day(LAST_MONTH)]
        report = json.loads(runner.invoke(app, ["audit", "report", *last, *source]).stdout)
        assert report["intakes"]["total"] == 1 and report["events_claimed_outside_period"] == 0
    # the bundle of today's days reports on its own (signed) period: today's recorded intake
    own = json.loads(runner.invoke(app, ["audit", "report", "--bundle", str(bundle), "--key", vkey]).stdout)
    assert own["intakes"]["total"] == 1
