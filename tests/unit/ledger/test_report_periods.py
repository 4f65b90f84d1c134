"""Periods of days cut at local midnight in each region's time zone: an event just before and just after
local midnight, at both ends of the period, in every overseas region (and in metropolitan France in
winter and in summer), national and regional reports, and `audit report --from/--to`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from cepbus.auditlog.context import reference_period, region_zones
from cepbus.auditlog.leaf import LedgerRecord
from cepbus.auditlog.report import FALLBACK_ZONE, LocalPeriod, build_report, local_period
from cepbus.reference import load_reference
from cepbus_app.cli import app
from services.ledger.store import SqlLedgerStore
from tests.unit.ledger.test_audit_report import MIN, T0, rec

ZONES = region_zones(load_reference())
#: Region code -> (zone the reference must give it, its UTC offset in hours in March 2026).
OVERSEAS = {
    "01": ("America/Guadeloupe", -4),
    "02": ("America/Martinique", -4),
    "03": ("America/Cayenne", -3),
    "04": ("Indian/Reunion", 4),
    "06": ("Indian/Mayotte", 3),
}
FIRST, LAST = date(2026, 3, 2), date(2026, 3, 4)


def at(moment: datetime, event_type: str = "IntakeRegistered", **facts: str) -> LedgerRecord:
    """A leaf that occurred (and was recorded) at `moment`."""
    minutes = (moment.timestamp() * 1000 - T0) / MIN
    return rec(event_type, minutes, **facts)


def local(day: date, zone: str, minutes: int = 0) -> datetime:
    """Local midnight of `day` in `zone`, moved by `minutes`."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)) + timedelta(minutes=minutes)


def intakes_around_midnights(
    region: str, zone: str, first: date = FIRST, last: date = LAST
) -> dict[str, LedgerRecord]:
    """Four intakes: a minute either side of the local midnight that opens the period and of the one
    that closes it."""
    end = last + timedelta(days=1)
    moments = {
        "before_start": local(first, zone, -1),
        "after_start": local(first, zone, +1),
        "before_end": local(end, zone, -1),
        "after_end": local(end, zone, +1),
    }
    return {
        name: at(moment, region_code=region, operator_kind="regional_cep", operator_id=f"cep-r{region}",
                 correlation_id=f"{region}-{name}")
        for name, moment in moments.items()
    }  # fmt: skip


def test_the_reference_gives_each_overseas_region_its_own_zone() -> None:
    for code, (zone, offset_h) in OVERSEAS.items():
        assert ZONES[code] == zone
        offset = local(FIRST, zone).utcoffset()
        assert offset is not None and offset == timedelta(hours=offset_h)
    assert ZONES["11"] == "Europe/Paris"


@pytest.mark.parametrize(
    ("region", "first"),
    [*((code, FIRST) for code in OVERSEAS), ("11", FIRST), ("11", date(2026, 7, 1))],
    ids=[*OVERSEAS, "11-winter", "11-summer"],
)
def test_each_region_is_cut_at_its_own_local_midnight(region: str, first: date) -> None:
    zone, last = ZONES[region], first + timedelta(days=2)
    records = intakes_around_midnights(region, zone, first, last)
    period = local_period(first, last, ZONES)
    for scope in (region, None):  # the regional report and the national one cut the same events
        report = build_report(records.values(), region=scope, period=period)
        assert report["intakes"]["total"] == 2, (region, scope)
        assert set(report["intakes"]["by_region"]) == {region}
    kept = {name: build_report([r], period=period)["intakes"]["total"] for name, r in records.items()}
    assert kept == {"before_start": 0, "after_start": 1, "before_end": 1, "after_end": 0}
    # the same days cut at UTC midnight (the old convention) keep another pair: hours off everywhere
    utc_start = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1000)
    utc_end = utc_start + 3 * 86_400_000
    by_utc = {name for name, r in records.items() if utc_start <= r.occurred_at_ms < utc_end}
    assert by_utc != {"after_start", "before_end"}
    assert build_report(records.values(), from_ms=utc_start, to_ms=utc_end)["intakes"]["total"] == len(by_utc)


def test_a_national_report_cuts_every_region_by_its_own_zone_at_once() -> None:
    records = [r for code in ("04", "03", "11") for r in intakes_around_midnights(code, ZONES[code]).values()]
    report = build_report(records, period=local_period(FIRST, LAST, ZONES))
    assert report["intakes"]["by_region"] == {"03": 2, "04": 2, "11": 2}
    # 23:59 on the last day in La Réunion is 19:59 UTC; 00:01 the next day in Guyane is 03:01 UTC the day
    # after the period: both are judged by their own local date, not by their UTC date
    reunion_late = at(local(LAST + timedelta(days=1), ZONES["04"], -1), region_code="04")
    guyane_early = at(local(FIRST, ZONES["03"], +1), region_code="03")
    assert datetime.fromtimestamp(reunion_late.occurred_at_ms / 1000, UTC).date() == LAST
    assert datetime.fromtimestamp(guyane_early.occurred_at_ms / 1000, UTC).date() == FIRST
    both = build_report([reunion_late, guyane_early], period=local_period(FIRST, LAST, ZONES))
    assert both["intakes"]["by_region"] == {"03": 1, "04": 1}


def test_the_report_says_which_convention_cut_the_period() -> None:
    period = local_period("2026-03-02", "2026-03-04", ZONES)
    regional = build_report([], region="04", period=period)
    start = int(local(FIRST, "Indian/Reunion").timestamp() * 1000)
    end = int(local(date(2026, 3, 5), "Indian/Reunion").timestamp() * 1000)
    assert regional["scope"] == {"region": "04", "from_ms": start, "to_ms": end}
    assert regional["period"] == {
        "from": "2026-03-02", "to": "2026-03-04", "cut": "local midnight per region",
        "fallback_zone": FALLBACK_ZONE,
        "regions": {"04": {"zone": "Indian/Reunion", "from_ms": start, "to_ms": end}},
    }  # fmt: skip
    national = build_report([], period=period)
    assert set(national["period"]["regions"]) == set(ZONES)
    # the scope's instants are the envelope: La Réunion starts first, the Antilles end last
    assert national["scope"]["from_ms"] == start
    assert national["scope"]["to_ms"] == int(local(date(2026, 3, 5), "America/Martinique").timestamp() * 1000)
    assert build_report([])["period"]["cut"] == "none"
    assert build_report([], from_ms=0, to_ms=1)["period"]["cut"] == "instants [from_ms, to_ms)"


def test_events_without_a_region_are_cut_in_the_fallback_zone() -> None:
    period = local_period(FIRST, LAST, ZONES)
    paris_late = at(local(LAST + timedelta(days=1), FALLBACK_ZONE, -1), "LedgerErasure", erased_key_id="k")
    paris_next = at(local(LAST + timedelta(days=1), FALLBACK_ZONE, +1), "LedgerErasure", erased_key_id="k")
    assert build_report([paris_late, paris_next], period=period)["erasures"] == 1


def test_a_period_open_at_one_end_and_bad_periods() -> None:
    records = intakes_around_midnights("04", ZONES["04"])
    assert build_report(records.values(), period=local_period(FIRST, None, ZONES))["intakes"]["total"] == 3
    assert build_report(records.values(), period=local_period(None, LAST, ZONES))["intakes"]["total"] == 3
    with pytest.raises(ValueError, match="ends"):
        LocalPeriod(LAST, FIRST, ZONES)
    with pytest.raises(ValueError, match="not both"):
        build_report([], period=local_period(FIRST, LAST, ZONES), from_ms=0)
    with pytest.raises(ValueError, match="not a date"):
        reference_period("2026-02-30", None)
    assert reference_period(None, None) is None


# -- through the command -----------------------------------------------------------------------------


@pytest.fixture
def ledger_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A ledger database holding intakes a minute either side of local midnights in La Réunion and
    Guyane, exported to a signed bundle."""
    from cepbus.auditlog.note import Signer
    from services.ledger.records import NewRecord
    from tests.support.factories import intake
    from tests.unit.ledger.test_ledger_bundle import event_record

    db, key, bundle = tmp_path / "ledger.db", tmp_path / "signing.key", tmp_path / "bundle.json"
    signer = Signer.generate("cep-bus.test/ledger")
    key.write_text(str(signer) + "\n")
    monkeypatch.setenv("CEPBUS_LEDGER_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(key))
    monkeypatch.setenv("CEPBUS_LEDGER_ORIGIN", "cep-bus.test/ledger")
    events = []
    for region, dep in (("04", "974"), ("03", "973")):
        for name, moment in {
            "before": local(FIRST, ZONES[region], -1), "after": local(FIRST, ZONES[region], +1),
            "last": local(LAST + timedelta(days=1), ZONES[region], -1),
            "next": local(LAST + timedelta(days=1), ZONES[region], +1),
        }.items():  # fmt: skip
            events.append(
                intake(region=region, departement=dep, occurred_at=moment, person=f"p-{region}-{name}")
            )
    records: list[NewRecord] = sorted((event_record(e) for e in events), key=lambda r: r.occurred_at_ms)
    recording = [0]  # the ledger's clock: each intake recorded when it occurred (periods go by it)
    with SqlLedgerStore(f"sqlite:///{db}", clock=lambda: recording[0]) as store:
        for record in records:
            recording[0] = record.occurred_at_ms
            store.append([record])
    runner = CliRunner()
    exported = runner.invoke(app, ["ledger", "export", "--out", str(bundle)])
    assert exported.exit_code == 0, exported.output
    return {"runner": runner, "bundle": bundle, "vkey": str(signer.verifier())}


def test_audit_report_from_to_are_local_days_from_the_ledger_and_from_a_bundle(
    ledger_env: dict[str, Any],
) -> None:
    runner = ledger_env["runner"]
    days = ["--from", FIRST.isoformat(), "--to", LAST.isoformat()]
    bundle = ["--bundle", str(ledger_env["bundle"]), "--key", ledger_env["vkey"]]
    for source in ([], bundle):
        result = runner.invoke(app, ["audit", "report", *days, *source])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["intakes"]["by_region"] == {"03": 2, "04": 2}
        assert report["period"]["cut"] == "local midnight per region"
        regional = json.loads(
            runner.invoke(app, ["audit", "report", "--region", "04", *days, *source]).stdout
        )
        assert regional["intakes"]["total"] == 2
        assert regional["scope"]["from_ms"] == int(local(FIRST, "Indian/Reunion").timestamp() * 1000)
    # a bundle without dates covers its own period, as instants (here: every entry)
    own = json.loads(runner.invoke(app, ["audit", "report", *bundle]).stdout)
    assert own["period"]["cut"] == "none" and own["intakes"]["total"] == 8


def test_an_export_of_whole_days_carries_them_and_its_report_cuts_each_region_at_its_own_midnight(
    ledger_env: dict[str, Any], tmp_path: Path
) -> None:
    """`ledger export --from --to` keeps the contents of every region's days (La Réunion's first day
    starts at 20:00 UTC the day before, the Antilles' last ends at 04:00 UTC the day after) and the days
    themselves, so the report from the bundle cuts each region at its own midnight."""
    runner, vkey = ledger_env["runner"], ledger_env["vkey"]
    bundle = tmp_path / "days.json"
    days = ["--from", FIRST.isoformat(), "--to", LAST.isoformat()]
    assert runner.invoke(app, ["ledger", "export", "--out", str(bundle), *days]).exit_code == 0
    document = json.loads(bundle.read_text())
    period = document["period"]
    assert (period["from_day"], period["to_day"]) == (FIRST.isoformat(), LAST.isoformat())
    assert document["period"]["from_ms"] == int(local(FIRST, "Indian/Reunion").timestamp() * 1000)
    assert document["period"]["to_ms"] == int(
        local(LAST + timedelta(days=1), "America/Guadeloupe").timestamp() * 1000
    )
    with_content = sum(1 for entry in document["entries"] if "content" in entry)
    # the span every zone's days lie in (La Réunion's start to the Antilles' end) holds all but La
    # Réunion's minute before its first day; the report cuts the rest at each region's own midnights
    assert with_content == 7
    result = runner.invoke(app, ["audit", "report", "--bundle", str(bundle), "--key", vkey])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["period"]["cut"] == "local midnight per region"
    assert report["intakes"]["by_region"] == {"03": 2, "04": 2}
    # days that a bundle carries are checked like the rest of it: one line, exit 1, no traceback
    for bad in ({"from_day": "2026-13-01"}, {"from_day": "2026-03-05", "to_day": "2026-03-01"}):
        broken = tmp_path / "broken.json"
        broken.write_text(json.dumps({**document, "period": {**document["period"], **bad}}))
        refused = runner.invoke(app, ["audit", "report", "--bundle", str(broken), "--key", vkey])
        assert refused.exit_code == 1 and "period" in refused.stderr and "Traceback" not in refused.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-13-01"], "not a date"),
        (["--from", "2026-03-05", "--to", "2026-03-01"], "ends"),
    ],
)
def test_bad_days_are_one_line_and_exit_2(ledger_env: dict[str, Any], args: list[str], message: str) -> None:
    result = ledger_env["runner"].invoke(app, ["audit", "report", *args])
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
