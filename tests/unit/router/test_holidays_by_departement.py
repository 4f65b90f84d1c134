"""Business days by département (issue #15): Alsace-Moselle's Good Friday and 26 December, each overseas
département's abolition of slavery, the département found from the referral's intake, kept across steps,
and deadlines that still end at local midnight overseas."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest

from cepbus.contract.models import (
    Choice,
    ChoiceRecorded,
    OrganisationKind,
    ReferralRequested,
    ReferralStatus,
    new_envelope,
)
from cepbus.reference import load_reference
from cepbus.reference.calendar import holiday_subdivision, is_business_day
from cepbus.reference.directory import load_directory
from services.router.handlers import RouterHandlers
from services.router.referrals.deadlines import DeadlinePolicy, add_business_days
from services.router.referrals.handlers import DepartementOf, ReferralLifecycle, journey_departement
from services.router.referrals.store import ReferralStore
from tests.support.authorship import Admitted
from tests.support.factories import intake, update
from tests.support.fakes import MovableClock

REFERENCE = load_reference()
PARIS = ZoneInfo("Europe/Paris")

#: Overseas département -> (its region, its abolition-of-slavery day in a year where it is a weekday).
ABOLITION = {
    "971": ("01", date(2026, 5, 27)),
    "972": ("02", date(2026, 5, 22)),
    "973": ("03", date(2026, 6, 10)),
    "974": ("04", date(2027, 12, 20)),  # 20 December 2025 and 2026 fall on a weekend
    "976": ("06", date(2026, 4, 27)),
}
ALSACE_MOSELLE = ["57", "67", "68"]
GOOD_FRIDAY_2026 = date(2026, 4, 3)
SAINT_STEPHEN_2025 = date(2025, 12, 26)  # a Friday (26 December 2026 is a Saturday)


def test_the_reference_places_the_departements_tested_here() -> None:
    assert {code: REFERENCE.departement(code).region_code for code in [*ALSACE_MOSELLE, "54"]} == {
        "57": "44",
        "67": "44",
        "68": "44",
        "54": "44",
    }
    assert {code: REFERENCE.departement(code).region_code for code in ABOLITION} == {
        code: region for code, (region, _) in ABOLITION.items()
    }


@pytest.mark.parametrize("departement", sorted(ABOLITION))
def test_abolition_of_slavery_is_a_holiday_only_in_its_departement(departement: str) -> None:
    region, day = ABOLITION[departement]
    assert day.weekday() < 5
    assert not is_business_day(day, region, departement)
    assert not is_business_day(day, region)  # the overseas region alone: the same calendar
    assert is_business_day(day, "11", "75")
    others = [code for code in ABOLITION if code != departement]
    assert all(is_business_day(day, ABOLITION[code][0], code) for code in others)


@pytest.mark.parametrize("departement", ALSACE_MOSELLE)
def test_alsace_moselle_has_good_friday_and_saint_stephen(departement: str) -> None:
    for day in (GOOD_FRIDAY_2026, SAINT_STEPHEN_2025):
        assert not is_business_day(day, "44", departement), day
    calendar = holidays.country_holidays("FR", subdiv=holiday_subdivision("44", departement), years=2026)
    assert date(2026, 12, 26) in calendar  # a Saturday in 2026, but a holiday there all the same


@pytest.mark.parametrize(("region", "departement"), [("11", "75"), ("44", "54"), ("44", None)])
def test_good_friday_and_saint_stephen_are_business_days_elsewhere(
    region: str, departement: str | None
) -> None:
    # 54 (Meurthe-et-Moselle) is in Lorraine but not under the local law; a Grand Est referral whose
    # département is unknown gets the national calendar
    assert is_business_day(GOOD_FRIDAY_2026, region, departement)
    assert is_business_day(SAINT_STEPHEN_2025, region, departement)
    calendar = holidays.country_holidays("FR", subdiv=holiday_subdivision(region, departement), years=2026)
    assert date(2026, 12, 26) not in calendar


def test_a_deadline_across_good_friday_is_one_business_day_later_in_bas_rhin() -> None:
    requested = datetime(2026, 4, 2, 8, 0, tzinfo=UTC)  # Thursday 2 April, 10:00 Paris
    # Paris: Friday 3 (1), Easter Monday 6 is a holiday, Tuesday 7 (2)
    paris = add_business_days(requested, 2, "11", PARIS, "75")
    # Bas-Rhin: Good Friday too, so Tuesday 7 (1), Wednesday 8 (2)
    bas_rhin = add_business_days(requested, 2, "44", PARIS, "67")
    assert paris == datetime(2026, 4, 7, 22, 0, tzinfo=UTC)
    assert bas_rhin == datetime(2026, 4, 8, 22, 0, tzinfo=UTC)
    assert bas_rhin - paris == timedelta(days=1)


@pytest.mark.parametrize(
    ("departement", "requested", "due"),
    [
        # Réunion (UTC+4), Friday 17 December 2027 10:00; Monday 20 is its holiday: Tuesday 21 (1),
        # Wednesday 22 (2), due at midnight Réunion, 20:00 UTC
        ("974", datetime(2027, 12, 17, 6, 0, tzinfo=UTC), datetime(2027, 12, 22, 20, 0, tzinfo=UTC)),
        # Guyane (UTC-3), Tuesday 9 June 2026 10:00; Wednesday 10 is its holiday: due at the end of
        # Friday 12 in Cayenne, 03:00 UTC on Saturday
        ("973", datetime(2026, 6, 9, 13, 0, tzinfo=UTC), datetime(2026, 6, 13, 3, 0, tzinfo=UTC)),
        # Guadeloupe (UTC-4), Tuesday 26 May 2026 23:30 local, already 27 May in UTC: the local day
        # counts, 27 May is its holiday, so Thursday 28 (1), Friday 29 (2), due 04:00 UTC on Saturday
        ("971", datetime(2026, 5, 27, 3, 30, tzinfo=UTC), datetime(2026, 5, 30, 4, 0, tzinfo=UTC)),
    ],
)
def test_overseas_deadlines_end_at_local_midnight(
    departement: str, requested: datetime, due: datetime
) -> None:
    region = ABOLITION[departement][0]
    zone = REFERENCE.region(region).zone
    assert add_business_days(requested, 2, region, zone, departement) == due
    assert due.astimezone(zone).time().hour == 0 and due.astimezone(zone).time().minute == 0


# -- the département of a referral: from its intake, through the lifecycle ----------------------------


@pytest.fixture
def referrals(tmp_path: Path) -> Iterator[ReferralStore]:
    opened = ReferralStore(f"sqlite:///{tmp_path / 'referrals.db'}")
    yield opened
    opened.close()


def routed_referral(router: RouterHandlers, departement: str, region: str = "44") -> ReferralRequested:
    """The referral the router makes of a switch to Apec, requested Thursday 2 April 2026 10:00 Paris."""
    at = datetime(2026, 4, 2, 8, 0, tzinfo=UTC)
    source = intake(region=region, departement=departement, cadre=True, occurred_at=at)
    router.on_intake(source)
    choice = ChoiceRecorded(
        envelope=new_envelope(
            ChoiceRecorded, producer_org_id=source.operator_id, causation=source.envelope, occurred_at=at
        ),
        intake_event_id=str(source.event_id),
        operator_id=source.operator_id,
        region_code=region,
        choice=Choice.SWITCH,
        chosen_operator_kind=OrganisationKind.APEC,
        consent_to_share=False,
    )
    [out] = router.on_choice(choice)
    assert isinstance(out.event, ReferralRequested)
    envelope = out.event.envelope.model_copy(update={"occurred_at": at})
    return out.event.model_copy(update={"envelope": envelope})


def lifecycle_for(store: ReferralStore, router: RouterHandlers) -> ReferralLifecycle:
    return Admitted(
        store,
        load_directory(),
        REFERENCE,
        deadlines=DeadlinePolicy(2, 5, 15),
        clock=MovableClock(datetime(2026, 4, 2, 9, 0, tzinfo=UTC)),
        locate=journey_departement(router.store),
    )


@pytest.mark.parametrize(
    ("departement", "received_due", "answered_due"),
    [
        ("67", datetime(2026, 4, 8, 22, 0, tzinfo=UTC), datetime(2026, 4, 13, 22, 0, tzinfo=UTC)),
        ("54", datetime(2026, 4, 7, 22, 0, tzinfo=UTC), datetime(2026, 4, 10, 22, 0, tzinfo=UTC)),
    ],
)
def test_a_referral_follows_the_calendar_of_its_intake_departement(
    referrals: ReferralStore, departement: str, received_due: datetime, answered_due: datetime
) -> None:
    router = RouterHandlers(REFERENCE)
    ref = routed_referral(router, departement)
    lifecycle = lifecycle_for(referrals, router)
    lifecycle.on_requested(ref)
    record = referrals.get(ref.referral_id)
    assert record is not None and record.departement_code == departement
    assert record.due_name == "received" and record.due_at_ms == int(received_due.timestamp() * 1000)
    # the next deadline is computed in the same calendar, from what the store kept
    lifecycle.on_status(update(ref, ReferralStatus.RECEIVED, sender=ref.recipient_org_id))
    record = referrals.get(ref.referral_id)
    assert record is not None and record.state == ReferralStatus.RECEIVED
    assert record.due_name == "answered" and record.due_at_ms == int(answered_due.timestamp() * 1000)
    assert record.to_json()["departement_code"] == departement


def test_journey_departement_by_cause_then_by_journey_else_none() -> None:
    router = RouterHandlers(REFERENCE)
    locate = journey_departement(router.store)
    ref = routed_referral(router, "68")
    assert locate(ref) == "68"  # the intake whose choice caused it
    # a referral of the same journey that no recorded choice caused: the journey's intake
    uncaused = ref.model_copy(update={"envelope": ref.envelope.model_copy(update={"causation_id": None})})
    assert locate(uncaused) == "68"
    elsewhere = ref.envelope.model_copy(update={"causation_id": None, "correlation_id": "another-journey"})
    assert locate(ref.model_copy(update={"envelope": elsewhere})) is None
    stranger = ref.envelope.model_copy(update={"person_pseudonym": "p-unknown-to-the-router"})
    assert locate(ref.model_copy(update={"envelope": stranger})) is None


def always(code: str) -> DepartementOf:
    return lambda _referral: code


def test_a_departement_outside_the_region_or_unknown_falls_back_to_the_region(
    referrals: ReferralStore,
) -> None:
    router = RouterHandlers(REFERENCE)
    ref = routed_referral(router, "75", region="11")
    for wrong in ("67", "99"):  # Bas-Rhin is not in Île-de-France; 99 is no département
        lifecycle = lifecycle_for(referrals, router)
        lifecycle.locate = always(wrong)
        lifecycle.on_requested(ref.model_copy(update={"referral_id": f"ref-{wrong}"}))
        record = referrals.get(f"ref-{wrong}")
        assert record is not None and record.departement_code is None
    lifecycle = lifecycle_for(referrals, router)
    lifecycle.on_requested(ref)
    record = referrals.get(ref.referral_id)
    assert record is not None and record.departement_code == "75"
    assert record.due_at_ms == int(datetime(2026, 4, 7, 22, 0, tzinfo=UTC).timestamp() * 1000)


#: The referrals table as the first release created it (no département).
FIRST_RELEASE_REFERRALS = """CREATE TABLE referrals (
    referral_id TEXT PRIMARY KEY, request_event_id TEXT NOT NULL, person_pseudonym TEXT,
    correlation_id TEXT NOT NULL, requester_org_id TEXT NOT NULL, recipient_org_id TEXT NOT NULL,
    recipient_kind TEXT NOT NULL, region_code TEXT NOT NULL, state TEXT NOT NULL,
    requested_at_ms BIGINT NOT NULL, updated_at_ms BIGINT NOT NULL, due_name TEXT, due_at_ms BIGINT
)"""


def test_a_store_created_before_the_departement_column_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute(FIRST_RELEASE_REFERRALS)
        old.execute(
            "INSERT INTO referrals VALUES ('ref-old', 'ev-1', 'p-1', 'c-1', 'cep-r11', 'apec-r11', 'apec', "
            "'11', 'requested', 1, 1, 'received', 2)"
        )
    old.close()
    store = ReferralStore(f"sqlite:///{path}")
    try:
        record = store.get("ref-old")
        assert record is not None and record.departement_code is None and record.due_at_ms == 2
    finally:
        store.close()
