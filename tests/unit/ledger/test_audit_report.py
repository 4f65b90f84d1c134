"""The audit report: the pure indicators over hand-built leaf records, and the same report from the database
and from its verified export bundle."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cepbus.auditlog.leaf import LedgerRecord
from cepbus.auditlog.note import Signer
from cepbus.auditlog.report import build_report, classify, delay_stats, report_csv
from cepbus.contract.models import (
    Event,
    NoticeRequested,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
)
from cepbus.reference import load_reference
from cepbus.runtime.messages import Rejected
from cepbus_app.cli import app
from cepbus_app.demo.simulator import Simulator
from services.notifier.handlers import NotifierHandlers
from services.router.handlers import RouterHandlers
from tests.support.ledger import applied_update, ledger_record, open_ledger

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000


def rec(
    event_type: str,
    at_min: float,
    event_id: str | None = None,
    recorded_min: float | None = None,
    **facts: str,
) -> LedgerRecord:
    """A leaf as the ledger writes it; recorded when it occurred unless `recorded_min` says otherwise."""
    return LedgerRecord(
        index=0, event_id=event_id or uuid.uuid4().hex, event_type=f"fr.cepbus.{event_type}", topic="t",
        occurred_at_ms=T0 + int(at_min * MIN),
        recorded_at_ms=T0 + int((at_min if recorded_min is None else recorded_min) * MIN),
        person_pseudonym=None, facts=facts,
    )  # fmt: skip


def journey(n: int, region: str, at_min: float, notice_after_min: float | None, channel: str = "phone",
            choice: str | None = None) -> list[LedgerRecord]:  # fmt: skip
    """One intake, its notice request and notice (if any), and the person's choice."""
    intake_id, corr = f"intake-{region}-{n}", f"corr-{region}-{n}"
    out = [rec("IntakeRegistered", at_min, intake_id, region_code=region, operator_id=f"cep-r{region}",
               operator_kind="regional_cep", channel=channel, correlation_id=corr)]  # fmt: skip
    if notice_after_min is not None:
        out.append(rec("NoticeRequested", at_min + 0.01, intake_event_id=intake_id, region_code=region,
                       correlation_id=corr))  # fmt: skip
        out.append(rec("NoticeIssued", at_min + notice_after_min, intake_event_id=intake_id,
                       region_code=region, correlation_id=corr))  # fmt: skip
    if choice:
        out.append(rec("ChoiceRecorded", at_min + 30, choice=choice, region_code=region, correlation_id=corr,
                       **({"chosen_operator_kind": "apec"} if choice == "switch" else {})))  # fmt: skip
    return out


def referral(
    ref: str, region: str, at_min: float, recipient: str, *statuses: tuple[str, float]
) -> list[LedgerRecord]:
    out = [rec("ReferralRequested", at_min, referral_id=ref, requester_org_id=f"cep-r{region}",
               recipient_org_id=recipient, recipient_kind="apec", region_code=region,
               correlation_id=f"corr-ref-{ref}")]  # fmt: skip
    # the router's verdicts carry no region: the report finds it through the referral; each names the
    # update it applies by its statement digest, and the update is in the ledger too
    for status, after in statuses:
        digest = f"{ref}-{status}-digest"
        out.append(rec("ReferralStatusChanged", at_min + after, referral_id=ref, statement_digest=digest))
        out.append(rec("ReferralUpdateVerdict", at_min + after, referral_id=ref, status=status,
                       verdict="applied", signer_org_id=recipient, update_digest=digest))  # fmt: skip
    return out


@pytest.fixture
def records() -> list[LedgerRecord]:
    out: list[LedgerRecord] = []
    # region 84: 4 intakes; notices after 1, 2, 3 min; one notice due but never issued; one with no notice
    out += journey(1, "84", 0, 1, choice="stay")
    out += journey(2, "84", 10, 2, channel="video", choice="switch")
    out += journey(3, "84", 20, 3, choice="undecided")
    out += journey(4, "84", 30, None)
    out.append(rec("NoticeRequested", 40, intake_event_id="intake-84-5", region_code="84"))  # due, no intake
    out += journey(6, "84", 50, None)
    out.append(
        rec("NoticeRequested", 50.5, intake_event_id="intake-84-6", region_code="84")
    )  # due, not issued
    # region 11: 1 intake, notice after 10 min; in the next day (outside a one-day period)
    out += journey(1, "11", 24 * 60 + 5, 10, choice="switch")
    # referrals in 84: accepted then first appointment 2 days later; declined; no answer
    out += referral("r1", "84", 60, "apec-r84", ("accepted", 60), ("first_appointment_held", 2 * 24 * 60))
    out += referral("r2", "84", 70, "apec-r84", ("declined", 5))
    out += referral("r3", "84", 80, "cap-emploi-r84")
    # breaches from event types other engineers add, and one type nobody knows
    out.append(rec("ReferralDeadlineBreached", 90, referral_id="r3", rule_id="REF-ANSWER-10D"))
    out.append(rec("RegulationBreach", 95, region_code="84", breach_kind="notice_missing"))
    out.append(rec("SomethingNew", 96, region_code="84"))
    out.append(rec("LedgerErasure", 97, erased_key_id="k"))
    return out


def test_indicators_over_hand_built_records(records: list[LedgerRecord]) -> None:
    report = build_report(records, region="84")
    assert report["intakes"] == {
        "total": 5,
        "by_region": {"84": 5},
        "by_operator": {"cep-r84": 5},
        "by_operator_kind": {"regional_cep": 5},
        "by_channel": {"phone": 4, "video": 1},
    }
    # due: 1, 2, 3 and 6 (5's intake is not in the ledger); issued: 1, 2, 3
    assert report["notices"]["due"] == 4 and report["notices"]["issued"] == 3
    assert report["notices"]["due_not_issued"] == 1
    assert report["notices"]["intake_to_notice_delay"] == {"count": 3, "p50_s": 120.0, "p90_s": 180.0,
                                                           "max_s": 180.0}  # fmt: skip
    assert report["choices"] == {"stay": 1, "switch": 1, "undecided": 1, "switch_to": {"apec": 1}}
    refs = report["referrals"]
    assert refs["matrix"] == {"cep-r84": {"apec-r84": 2, "cap-emploi-r84": 1}}
    assert (refs["total"], refs["accepted"], refs["declined"], refs["awaiting_answer"]) == (3, 1, 1, 1)
    assert refs["acceptance_rate"] == 0.5
    assert refs["delay_to_first_appointment"]["max_s"] == 2 * 24 * 3600
    assert report["deadline_breaches"] == {"total": 1, "by_event_type": {"ReferralDeadlineBreached": 1},
                                           "by_rule": {"REF-ANSWER-10D": 1}}  # fmt: skip
    assert report["regulation_breaches"]["by_rule"] == {"notice_missing": 1}
    assert report["unknown_event_types"] == {"fr.cepbus.SomethingNew": 1}
    # the erasure names no region: out of a regional report, counted in the national one
    assert report["erasures"] == 0 and build_report(records)["erasures"] == 1


def test_a_referral_the_bus_expired_is_counted_as_expired_not_awaiting(records: list[LedgerRecord]) -> None:
    """Issue #24: an unanswered referral closed by the router (ReferralExpired) leaves 'awaiting answer';
    its reminders are recorded but not counted."""
    records.append(rec("ReferralReminderDue", 85, referral_id="r3", reminder="unanswered", region_code="84"))
    before = build_report(records, region="84")["referrals"]
    assert (before["expired"], before["awaiting_answer"]) == (0, 1)
    records.append(rec("ReferralExpired", 90, referral_id="r3", status_at_expiry="requested",
                       expired_after_days="30", region_code="84"))  # fmt: skip
    report = build_report(records, region="84")
    refs = report["referrals"]
    assert (refs["total"], refs["accepted"], refs["declined"], refs["expired"], refs["awaiting_answer"]) == (
        3, 1, 1, 1, 0,
    )  # fmt: skip
    assert report["unknown_event_types"] == {"fr.cepbus.SomethingNew": 1}  # both types are known
    assert report["by_region"]["84"]["referrals_expired"] == 1


def test_region_and_period_scope(records: list[LedgerRecord]) -> None:
    national = build_report(records)
    assert national["intakes"]["by_region"] == {"11": 1, "84": 5}
    assert national["choices"]["switch"] == 2
    first_day = build_report(records, from_ms=T0, to_ms=T0 + 24 * 60 * MIN)
    assert first_day["intakes"]["total"] == 5
    # a referral's statuses count whenever they happen: the appointment two days later still counts
    assert first_day["referrals"]["delay_to_first_appointment"]["count"] == 1
    assert build_report(records, region="11")["notices"]["intake_to_notice_delay"]["max_s"] == 600.0
    assert build_report(records, region="53")["events_in_scope"] == 0


def test_classification_is_by_the_contracts_types_and_lists_the_unknown(records: list[LedgerRecord]) -> None:
    """By type, never by a name that looks like one: a type the contract does not know is counted under
    `unknown_event_types`, whatever its name says."""
    assert classify("fr.cepbus.IntakeRegistered") == "intake"
    assert classify("fr.cepbus.ReferralDeadlineBreached") == "deadline_breach"
    assert classify("fr.cepbus.RegulationBreach") == "regulation_breach"
    assert classify("fr.cepbus.NoticeDeadlineMissed") is None  # looks like a breach, is no contract type
    assert classify("fr.cepbus.ChoiceReminderDue") is None  # a contract type no indicator counts
    stranger = rec("NoticeDeadlineMissed", 0, "x-1", region_code="84")
    report = build_report([*records, stranger])
    before = build_report(records)["unknown_event_types"]  # the fixture holds a stranger of its own
    assert report["unknown_event_types"] == {**before, "fr.cepbus.NoticeDeadlineMissed": 1}
    plain = build_report(records)
    assert (report["deadline_breaches"], report["regulation_breaches"]) == (
        plain["deadline_breaches"],
        plain["regulation_breaches"],
    )


def test_delay_percentiles_are_nearest_rank() -> None:
    stats = delay_stats(range(1000, 11_000, 1000))  # 1..10 s
    assert stats == {"count": 10, "p50_s": 5.0, "p90_s": 9.0, "max_s": 10.0}
    assert delay_stats([]) == {"count": 0, "p50_s": None, "p90_s": None, "max_s": None}


def test_csv_has_one_row_per_indicator(records: list[LedgerRecord]) -> None:
    lines = report_csv(build_report(records, region="84")).splitlines()
    assert lines[0] == "indicator,value"
    assert "referrals.matrix.cep-r84.apec-r84,2" in lines
    assert "notices.intake_to_notice_delay.p50_s,120.0" in lines


# -- from the database and from its bundle -------------------------------------------------------------


REASONS = ("in_employment", "session_full", "person_unreachable")


def loop_events(count: int, seed: int) -> list[Event]:
    """Simulated intakes, and what the services derive from them, plus referral statuses."""
    reference = load_reference()
    simulator = Simulator(reference, seed=seed, now=datetime(2026, 3, 2, 12, tzinfo=UTC))
    router, notifier = RouterHandlers(reference), NotifierHandlers(reference)
    events: list[Event] = []
    for n, intake in enumerate(simulator.intakes(count)):
        events.append(intake)
        try:
            decided = [out.event for out in router.on_intake(intake)]
        except Rejected as refused:  # recorded as decided "rejected"
            events += [out.event for out in refused.also]
            continue
        events += decided
        for request in decided:
            if not isinstance(request, NoticeRequested):
                continue
            events += [out.event for out in notifier.on_notice_requested(request)]
            choice = simulator.choice(intake, request)
            events.append(choice)
            for referral_event in (out.event for out in router.on_choice(choice)):
                events.append(referral_event)
                assert isinstance(referral_event, ReferralRequested)
                status = ReferralStatus.ACCEPTED if n % 3 else ReferralStatus.DECLINED
                reason = REASONS[n % len(REASONS)] if status == ReferralStatus.DECLINED else None
                answered_at = referral_event.envelope.occurred_at + timedelta(days=2)
                # what the ledger holds of the recipient's answer: its signed update, the router's verdict
                events += applied_update(referral_event, status, answered_at, reason)
    return events


def test_report_from_the_database_equals_the_report_from_its_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, key, bundle = tmp_path / "ledger.db", tmp_path / "signing.key", tmp_path / "bundle.json"
    signer = Signer.generate("cep-bus.test/ledger")
    key.write_text(str(signer) + "\n")
    pinned = ["--key", str(signer.verifier())]
    monkeypatch.setenv("CEPBUS_LEDGER_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(key))
    monkeypatch.setenv("CEPBUS_LEDGER_ORIGIN", "cep-bus.test/ledger")
    events = loop_events(120, seed=3)
    with open_ledger(f"sqlite:///{db}") as store:
        store.append([
            ledger_record(e, "t", signed=True) for e in events
        ])  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(app, ["ledger", "export", "--out", str(bundle)]).exit_code == 0
    reports: dict[str, dict[str, Any]] = {}
    for source, extra in (("ledger", []), ("bundle", ["--bundle", str(bundle), *pinned])):
        result = runner.invoke(app, ["audit", "report", "--region", "84", *extra])
        assert result.exit_code == 0, result.output
        reports[source] = json.loads(result.stdout)
    ledger_source, bundle_source = reports["ledger"].pop("source"), reports["bundle"].pop("source")
    # issue #24: the refusals by reason and recipient kind are sealed facts: the ledger's operator opens
    # them, an auditor's bundle cannot; everything else is the same report
    ledger_refusals = reports["ledger"]["referrals"].pop("refusals")
    bundle_refusals = reports["bundle"]["referrals"].pop("refusals")
    assert reports["ledger"] == reports["bundle"]
    declined = reports["ledger"]["referrals"]["declined"]
    assert declined > 0 and bundle_refusals == {"available": False, "total": declined}
    assert ledger_refusals["available"] and ledger_refusals["unreadable"] == 0
    assert sum(ledger_refusals["by_reason"].values()) == declined
    assert set(ledger_refusals["by_reason"]) <= set(REASONS)
    assert sum(sum(r.values()) for r in ledger_refusals["by_recipient_kind"].values()) == declined
    # an erased person's decline no longer opens: counted as unreadable, never guessed
    in_84 = {e.referral_id for e in events if isinstance(e, ReferralRequested) and e.region_code == "84"}
    [declined_one] = [
        e for e in events
        if isinstance(e, ReferralStatusChanged) and e.status == ReferralStatus.DECLINED
        and e.referral_id in in_84
    ][:1]  # fmt: skip
    with open_ledger(f"sqlite:///{db}") as store:
        store.erase(declined_one.envelope.person_pseudonym or "")
    again = runner.invoke(app, ["audit", "report", "--region", "84"])
    after = json.loads(again.stdout)["referrals"]["refusals"]
    assert after["unreadable"] == 1 and sum(after["by_reason"].values()) == declined - 1
    assert ledger_source["root_b64"] == bundle_source["root_b64"] and bundle_source["kind"] == "bundle"
    report = reports["ledger"]
    assert report["intakes"]["total"] > 5 and set(report["intakes"]["by_region"]) == {"84"}
    assert report["notices"]["issued"] == report["notices"]["due"] > 0
    assert report["referrals"]["total"] > 0 and report["referrals"]["acceptance_rate"] is not None
    assert report["unknown_event_types"] == {}

    # a bundle that does not verify gives no report
    document = json.loads(bundle.read_text())
    document["entries"].pop()
    bundle.write_text(json.dumps(document))
    result = runner.invoke(app, ["audit", "report", "--bundle", str(bundle), *pinned])
    assert result.exit_code == 1 and "BUNDLE VERIFICATION FAILED" in result.output
