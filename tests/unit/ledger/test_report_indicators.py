"""The indicators added for France compétences' audit: the CEP's own appointment delay (intake -> first
level-1 or level-2 start), reception sites per département, silent operators, notices on time, the
figures per region and per operator kind, and the binned delay distributions the charts are drawn from."""

from __future__ import annotations

from typing import Any

from cepbus.auditlog.leaf import LedgerRecord
from cepbus.auditlog.report import (
    DELAY_BINS_S,
    NOTICE_ON_TIME_S,
    SILENCE_THRESHOLD_DAYS,
    KnownOperator,
    KnownSite,
    build_report,
    histogram,
    local_period,
    report_csv,
)
from services.ledger.facts import NON_PERSONAL_FIELDS
from services.notifier.metrics import INTAKE_TO_NOTICE_SECONDS
from tests.unit.ledger.test_audit_report import T0, journey, rec

DAY_MIN = 24 * 60


def intake(n: int, region: str, dep: str, at_min: float, channel: str = "in_person",
           kind: str = "regional_cep", **facts: str) -> LedgerRecord:  # fmt: skip
    prefix = {"regional_cep": "cep", "apec": "apec"}[kind]
    org = f"{prefix}-r{region}"
    return rec("IntakeRegistered", at_min, f"intake-{region}-{n}", region_code=region, departement_code=dep,
               operator_id=org, operator_kind=kind, channel=channel, correlation_id=f"corr-{region}-{n}",
               producer_org_id=org, **facts)  # fmt: skip


def level(n: int, region: str, at_min: float, which: str = "level_1", channel: str = "in_person",
          operator: str | None = None, recorded_min: float | None = None) -> LedgerRecord:  # fmt: skip
    """A level start for intake n, recorded when it occurred unless `recorded_min` says otherwise."""
    org = operator or f"cep-r{region}"
    return rec("ServiceLevelStarted", at_min, recorded_min=recorded_min,
               intake_event_id=f"intake-{region}-{n}", operator_id=org, operator_kind="regional_cep",
               region_code=region, level=which, channel=channel, correlation_id=f"corr-{region}-{n}",
               producer_org_id=org)  # fmt: skip


def test_the_facts_the_new_indicators_read_are_clear_and_the_site_text_stays_sealed() -> None:
    clear = {"level", "channel", "intake_event_id", "departement_code", "operator_id", "reception_site_id"}
    assert clear <= NON_PERSONAL_FIELDS
    assert "reception_site" not in NON_PERSONAL_FIELDS  # free text: it stays sealed with the event


def test_cep_appointment_delay_from_intake_to_the_first_level_at_its_own_operator() -> None:
    records = [
        intake(1, "84", "69", 0), level(1, "84", 10), level(1, "84", 3 * DAY_MIN, "level_2"),
        intake(2, "84", "38", 0, channel="phone"), level(2, "84", 2 * DAY_MIN, "level_2", channel="phone"),
        intake(3, "04", "974", 0, channel="video"), level(3, "04", 60, channel="video"),
        # switched to Apec: Apec's start is Apec's appointment, not the CEP's
        intake(4, "84", "69", 0), level(4, "84", 30, operator="apec-r84"),
        intake(5, "84", "69", 0),  # nothing started yet
        # a start the operator backdated: recorded a day later, claimed 5 minutes after the intake
        intake(6, "11", "75", 0), level(6, "11", 5, recorded_min=DAY_MIN),
    ]  # fmt: skip
    cep = build_report(records)["cep_appointment_delay"]
    assert (cep["intakes"], cep["started"], cep["not_started"]) == (6, 4, 2)
    assert cep["delay"]["count"] == 4 and cep["delay"]["max_s"] == 2 * 86_400
    assert cep["delay"]["claimed"]["count"] == 4  # the backdated start shows beside
    assert cep["by_region"]["84"] == {
        "count": 2,
        "p50_s": 600.0,
        "p90_s": 2 * 86_400.0,
        "max_s": 2 * 86_400.0,
    }
    assert cep["by_region"]["11"]["max_s"] == 86_400 and cep["by_region"]["11"]["claimed"]["max_s"] == 300
    assert cep["by_departement"]["38"]["max_s"] == 2 * 86_400
    assert {k: v["count"] for k, v in cep["by_channel"].items()} == {"in_person": 2, "phone": 1, "video": 1}
    assert {k: v["count"] for k, v in cep["by_delivery"].items()} == {"in_person": 2, "remote": 2}
    assert cep["by_region_and_delivery"]["84"]["remote"]["p50_s"] == 2 * 86_400
    assert cep["by_region_and_delivery"]["04"] == {
        "remote": {"count": 1, "p50_s": 3600.0, "p90_s": 3600.0, "max_s": 3600.0}
    }
    assert {k: v["count"] for k, v in cep["by_first_level"].items()} == {"level_1": 3, "level_2": 1}
    assert cep["by_reception_site"] is None  # no leaf carries a site
    by_region = build_report(records)["by_region"]
    assert by_region["84"]["service_started"] == 2 and by_region["84"]["intakes"] == 4


def test_reception_sites_per_departement() -> None:
    records = [intake(1, "84", "69", 0), intake(2, "84", "69", 1, channel="video", kind="apec"),
               intake(3, "84", "38", 2, channel="phone")]  # fmt: skip
    sites = build_report(records)["reception_sites"]
    assert sites["site_fact_in_ledger"] is False and sites["sites_in_use"] is None
    assert sites["by_departement"]["69"] == {
        "region_code": "84", "intakes": 2, "in_person": 1, "remote": 1,
        "operators": {"apec-r84": 1, "cep-r84": 1}, "site_count": None, "sites": None,
        "registered_sites": None, "registered_sites_unused": None,
    }  # fmt: skip
    # leaves that carry a (non-personal) site identifier list the sites in use
    with_site = [intake(1, "84", "69", 0, reception_site_id="site-lyon-1"),
                 intake(2, "84", "69", 1, reception_site_id="site-lyon-2"),
                 intake(3, "84", "69", 2, reception_site_id="site-lyon-1")]  # fmt: skip
    report = build_report(with_site)
    assert report["reception_sites"]["sites_in_use"] == 2
    assert report["reception_sites"]["by_departement"]["69"]["sites"] == {"site-lyon-1": 2, "site-lyon-2": 1}
    assert report["cep_appointment_delay"]["by_reception_site"] == {}  # sites, but no level started yet
    started = build_report([*with_site, level(1, "84", 20)])["cep_appointment_delay"]["by_reception_site"]
    assert started == {"site-lyon-1": {"count": 1, "p50_s": 1200.0, "p90_s": 1200.0, "max_s": 1200.0}}


def test_reception_sites_against_the_registry() -> None:
    """With the registry: sites declared per département beside those in use (counted in the site's own
    département), the declared sites nobody came to, and a site id the registry does not know."""
    registry = [
        KnownSite("site-lyon-1", "cep-r84", "69", "84"), KnownSite("site-lyon-2", "cep-r84", "69", "84"),
        KnownSite("site-grenoble-1", "cep-r84", "38", "84"), KnownSite("site-ain-1", "cep-r84", "01", "84"),
        KnownSite("site-paris-1", "cep-r11", "75", "11"),
    ]  # fmt: skip
    records = [intake(1, "84", "69", 0, reception_site_id="site-lyon-1"),
               # a person of the Isère received at Lyon: the site counts in the Rhône
               intake(2, "84", "38", 1, reception_site_id="site-lyon-1"),
               intake(3, "84", "38", 2, reception_site_id="site-vienne-9"),  # not declared
               intake(4, "84", "69", 3, kind="apec")]  # fmt: skip
    sites = build_report(records, sites=registry)["reception_sites"]
    assert (sites["registry"], sites["sites_registered"], sites["sites_in_use"]) == (True, 5, 2)
    assert sites["unregistered_sites"] == {"site-vienne-9": 1} and sites["intakes_without_site"] == 1
    rhone, isere, ain = (sites["by_departement"][d] for d in ("69", "38", "01"))
    assert rhone["sites"] == {"site-lyon-1": 2} and rhone["intakes"] == 2
    assert (rhone["registered_sites"], rhone["registered_sites_unused"]) == (2, ["site-lyon-2"])
    assert isere["intakes"] == 2 and isere["sites"] == {"site-vienne-9": 1}
    assert isere["registered_sites_unused"] == ["site-grenoble-1"]
    assert ain["intakes"] == 0 and ain["registered_sites_unused"] == ["site-ain-1"]  # declared, unused
    assert sites["departements_with_intakes"] == 2 and "75" in sites["by_departement"]
    # one region's report counts only that region's declared sites
    scoped = build_report(records, sites=registry, region="84")["reception_sites"]
    assert scoped["sites_registered"] == 4 and "75" not in scoped["by_departement"]


def operators() -> list[KnownOperator]:
    return [KnownOperator("cep-r84", "regional_cep", "84"), KnownOperator("apec-r84", "apec", "84"),
            KnownOperator("cep-r04", "regional_cep", "04"),
            KnownOperator("cap-emploi-r04", "cap_emploi", "04")]  # fmt: skip


def test_silent_operators_in_the_period_and_the_six_months_rule() -> None:
    long_ago = -200 * DAY_MIN  # more than six months before the period
    records = [
        rec("IntakeRegistered", long_ago, producer_org_id="apec-r84", region_code="84"),
        rec("IntakeRegistered", -10 * DAY_MIN, producer_org_id="cep-r04", region_code="04"),
        intake(1, "84", "69", 60),
        # a partner's applied status update counts as hearing from it (the router produced the verdict)
        rec("ReferralStatusChanged", 120, referral_id="r", statement_digest="d"),
        rec("ReferralUpdateVerdict", 120, referral_id="r", status="accepted", verdict="applied",
            signer_org_id="cap-emploi-r04", producer_org_id="cep-bus-router", update_digest="d"),
    ]  # fmt: skip
    period = local_period("2026-01-01", "2026-01-01", {"84": "Europe/Paris", "04": "Indian/Reunion"})
    silent = build_report(records, period=period, operators=operators())["silent_operators"]
    assert (silent["expected"], silent["heard"], silent["silent"]) == (4, 2, 2)
    assert set(silent["operators"]) == {"apec-r84", "cep-r04"}
    apec = silent["operators"]["apec-r84"]
    assert apec["last_heard_ms"] == T0 + long_ago * 60_000 and apec["formal_notice_due"] is True
    assert apec["silent_days"] > SILENCE_THRESHOLD_DAYS
    assert silent["operators"]["cep-r04"]["formal_notice_due"] is False
    assert silent["formal_notice_due"] == 1
    regional = build_report(records, region="04", period=period, operators=operators())
    assert (
        regional["silent_operators"]["expected"] == 2 and regional["by_region"]["04"]["silent_operators"] == 1
    )
    assert build_report(records)["silent_operators"] is None  # no list of operators: no silence check


def test_notices_on_time_and_the_figures_per_region_and_operator_kind() -> None:
    # the report's "on time" is the dashboard's: the contract's threshold, a bucket of the notifier's
    # histogram
    assert NOTICE_ON_TIME_S in INTAKE_TO_NOTICE_SECONDS._upper_bounds
    records = [
        *journey(1, "84", 0, 0.5, choice="stay"),  # 30 s: on time
        *journey(2, "84", 10, 2, choice="switch"),  # 2 min: late
        *journey(3, "11", 20, None),
        rec(
            "RegulationBreach", 30, region_code="84", operator_kind="regional_cep", breach="no_notice_issued"
        ),
    ]
    report = build_report(records)
    assert report["notices"]["on_time"] == 1 and report["notices"]["on_time_within_s"] == NOTICE_ON_TIME_S
    row = report["by_region"]["84"]
    assert (row["intakes"], row["notices_due"], row["notices_issued"], row["notices_on_time"]) == (2, 2, 2, 1)
    assert (row["choices_stay"], row["choices_switch"], row["regulation_breaches"]) == (1, 1, 1)
    assert row["intake_to_notice_delay"]["max_s"] == 120
    assert report["by_region"]["11"]["intakes"] == 1 and report["by_region"]["11"]["notices_due"] == 0
    kind = report["by_operator_kind"]["regional_cep"]
    assert (kind["intakes"], kind["notices_issued"], kind["regulation_breaches"]) == (3, 2, 1)


def test_distributions_are_binned_per_region_and_flatten_to_csv() -> None:
    assert histogram([0, 999, 1000, 59_999, 60_000, 10**12, -5]) == [3, 1, 1, 1] + [0] * 7 + [1]
    records = [*journey(1, "84", 0, 0.5), *journey(2, "84", 10, 2), *journey(3, "11", 20, 90)]
    report = build_report(records)
    distribution: dict[str, Any] = report["delay_distributions"]
    assert distribution["bins_s"] == list(DELAY_BINS_S)
    notices = distribution["intake_to_notice"]
    assert notices["by_region"]["84"]["recorded"] == histogram([30_000, 120_000])
    assert sum(notices["all"]["recorded"]) == 3 and "claimed" not in notices["all"]
    lines = report_csv(report).splitlines()
    assert "delay_distributions.bins_s.3,60" in lines
    assert "delay_distributions.intake_to_notice.by_region.84.recorded.2,1" in lines


def test_every_type_the_ledger_records_is_counted_or_known_not_to_be() -> None:
    """The report classifies by the contract's types: a type added to a ledger topic without a decision
    here fails this test instead of being silently listed as unknown."""
    from cepbus.auditlog.report import EVENT_KINDS, NOT_COUNTED, classify, is_known
    from cepbus.contract.topics import LEDGER_TOPICS

    for spec in LEDGER_TOPICS:
        assert spec.payload in EVENT_KINDS or spec.payload in NOT_COUNTED, spec.payload.__name__
        assert is_known(spec.payload.avro_name)
    assert classify("fr.cepbus.RegulationBreach") == "regulation_breach"
    assert classify("fr.cepbus.ReferralDeadlineBreached") == "deadline_breach"
    assert classify("fr.cepbus.SomethingNew") is None and not is_known("fr.cepbus.SomethingNew")
