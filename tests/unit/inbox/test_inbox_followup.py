"""The reminders the list of referrals shows (issue #24), computed by the inbox from the read side's
fields alone, on a clock the test moves: « Rappel : échéance demain » when the pending deadline's last
day is the next working day (the region's day: Easter Monday, Alsace-Moselle's Good Friday, La
Réunion's time), « Sans réponse depuis N jours » from 10 whole days unanswered since the router received
the referral; both held to the router's own follow-up (`services/router/referrals/follow_up.py`), which
the inbox may not import."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cepbus.contract.models import OrganisationKind, ReferralStatus
from cepbus.contract.readside import ReferralRecordView
from cepbus.reference import load_reference
from cepbus.reference.calendar import deadline_last_day
from services.inbox import followup
from services.inbox.settings import InboxSettings
from services.router.referrals import deadlines as router_deadlines
from services.router.referrals.follow_up import FollowUpPolicy, reminder_time
from tests.support.factories import MONDAY
from tests.unit.inbox.harness import PARTNER, REQUESTER, Harness, log_in, take_step

PARIS, REUNION = ZoneInfo("Europe/Paris"), ZoneInfo("Indian/Reunion")
REFERENCE = load_reference()
S = ReferralStatus


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def end_of(day: date, zone: ZoneInfo) -> datetime:
    """A deadline whose last day is `day`: local midnight after it, as the router writes it."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)


def record(
    *,
    last_day: date | None = None,
    zone: ZoneInfo = PARIS,
    region: str = "11",
    departement: str | None = None,
    status: S = S.REQUESTED,
    received: datetime = MONDAY,
    requested: datetime | None = None,
    is_open: bool = True,
) -> ReferralRecordView:
    due = ms(end_of(last_day, zone)) if last_day is not None else None
    return ReferralRecordView(
        referral_id="r-1",
        request_event_id="e-1",
        person_pseudonym="p-1",
        correlation_id="c-1",
        requester_org_id=REQUESTER,
        recipient_org_id=PARTNER,
        recipient_kind=OrganisationKind.TRANSITIONS_PRO,
        region_code=region,
        departement_code=departement,
        status=status,
        open=is_open,
        requested_at_ms=ms(requested or received),
        updated_at_ms=ms(received),
        pending_deadline="received" if last_day is not None else None,
        pending_deadline_due_at_ms=due,
        received_at_ms=ms(received),
    )


def kinds(view: ReferralRecordView, now: datetime, zone: ZoneInfo = PARIS) -> list[str]:
    return [badge.kind for badge in followup.badges(view, ms(now), zone, 10)]


def paris(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("today", "last_day", "shown"),
    [
        (date(2026, 3, 3), date(2026, 3, 4), True),  # Tuesday, deadline Wednesday
        (date(2026, 3, 6), date(2026, 3, 9), True),  # Friday, deadline Monday
        (date(2026, 3, 7), date(2026, 3, 9), True),  # Saturday, deadline Monday
        (date(2026, 3, 5), date(2026, 3, 9), False),  # Thursday: Friday comes first
        (date(2026, 3, 9), date(2026, 3, 9), False),  # the last day itself
        (date(2026, 3, 2), date(2026, 3, 4), False),  # two working days ahead
        (date(2026, 4, 3), date(2026, 4, 7), True),  # Friday before Easter Monday, deadline Tuesday
        (date(2026, 4, 2), date(2026, 4, 3), True),  # Thursday, Good Friday is a working day in Paris
    ],
)
def test_the_deadline_badge_shows_on_the_working_day_before_the_deadline(
    today: date, last_day: date, shown: bool
) -> None:
    view = record(last_day=last_day, received=paris(date(2026, 3, 1)))
    assert ("deadline_tomorrow" in kinds(view, paris(today))) is shown
    assert ("deadline_tomorrow" in kinds(view, paris(today, 0) + timedelta(minutes=1))) is shown
    assert ("deadline_tomorrow" in kinds(view, paris(today, 23) + timedelta(minutes=59))) is shown


def test_the_deadline_badge_follows_the_departements_holidays_and_the_regions_time() -> None:
    # Moselle: Good Friday 3 April 2026 and Easter Monday are holidays; on Thursday the next working day
    # is Tuesday 7 April
    thursday = paris(date(2026, 4, 2))
    moselle = record(
        last_day=date(2026, 4, 7), region="44", departement="57", received=paris(date(2026, 3, 31))
    )
    nancy = record(
        last_day=date(2026, 4, 7), region="44", departement="54", received=paris(date(2026, 3, 31))
    )
    assert kinds(moselle, thursday) == ["deadline_tomorrow"] and kinds(nancy, thursday) == []
    # La Réunion (UTC+4): at 21:30 UTC on Thursday it is Friday there, and Monday is the next working day
    instant = datetime(2026, 3, 5, 21, 30, tzinfo=UTC)
    reunion = record(
        last_day=date(2026, 3, 9), zone=REUNION, region="04", received=instant - timedelta(days=3)
    )
    metropole = record(last_day=date(2026, 3, 9), zone=PARIS, received=instant - timedelta(days=3))
    assert kinds(reunion, instant, REUNION) == ["deadline_tomorrow"]
    assert kinds(metropole, instant, PARIS) == []  # still Thursday in Paris
    # a deadline passed, or no deadline, or a closed referral: no badge
    assert kinds(record(last_day=date(2026, 3, 4)), paris(date(2026, 3, 5))) == []
    assert kinds(record(), paris(date(2026, 3, 3))) == []
    closed = record(last_day=date(2026, 3, 4), status=S.DECLINED, is_open=False)
    assert kinds(closed, paris(date(2026, 3, 3))) == []


def test_the_unanswered_badge_counts_whole_days_since_the_router_received_it() -> None:
    received = datetime(2026, 3, 2, 17, 45, tzinfo=UTC)
    view = record(received=received, requested=received - timedelta(days=40))  # a backdated request
    assert kinds(view, received + timedelta(days=10) - timedelta(seconds=1)) == []
    assert followup.days_unanswered(view, ms(received + timedelta(days=10) - timedelta(seconds=1))) == 9
    [badge] = followup.badges(view, ms(received + timedelta(days=10)), PARIS, 10)
    assert (badge.kind, badge.text) == ("unanswered", "Sans réponse depuis 10 jours")
    [badge] = followup.badges(view, ms(received + timedelta(days=23, hours=5)), PARIS, 10)
    assert badge.text == "Sans réponse depuis 23 jours"
    # received (acknowledged) is still unanswered; accepted, declined or closed is not
    assert kinds(record(received=received, status=S.RECEIVED), received + timedelta(days=12)) == [
        "unanswered"
    ]
    for status in (S.ACCEPTED, S.APPOINTMENT_BOOKED, S.NO_SHOW):
        assert kinds(record(received=received, status=status), received + timedelta(days=12)) == []
    closed = record(received=received, status=S.EXPIRED, is_open=False)
    assert kinds(closed, received + timedelta(days=40)) == []
    # the threshold is a setting
    assert followup.badges(view, ms(received + timedelta(days=4)), PARIS, 3)[0].text == (
        "Sans réponse depuis 4 jours"
    )


@pytest.mark.parametrize(("region", "departement"), [("11", None), ("44", "57"), ("04", None), ("03", None)])
def test_the_badges_agree_with_the_routers_reminders(region: str, departement: str | None) -> None:
    """For referrals received on each day of a spring (Easter, May's holidays), at noon in the region
    (after the router's 08:00 reminder) on every day before their deadline's last day: the deadline
    badge is shown exactly when the router's `deadline_tomorrow` reminder is due; and the unanswered
    badge from the router's first `unanswered` reminder on."""
    zone = REFERENCE.region(region).zone
    policy = router_deadlines.DeadlinePolicy()
    start = datetime(2026, 3, 25, 10, tzinfo=zone)
    shown = 0
    for offset in range(60):
        received = start + timedelta(days=offset)
        for name, days in (("received", policy.received), ("answered", policy.answered)):
            due = router_deadlines.add_business_days(received, days, region, zone, departement)
            view = record(region=region, departement=departement, received=received).model_copy(
                update={"pending_deadline": name, "pending_deadline_due_at_ms": ms(due)}
            )
            now = datetime.combine(received.date(), datetime.min.time(), zone).replace(hour=12)
            last_day = deadline_last_day(ms(due), zone)
            while now < due:
                # the router's reminder is due from 08:00 the working day before until the deadline; on
                # the last day itself the deadline is today, not tomorrow
                routers = reminder_time(due, region, zone, departement) <= now < due
                routers = routers and now.date() < last_day
                assert followup.deadline_tomorrow(view, ms(now), zone) is routers, (received, name, now)
                shown += routers
                now += timedelta(days=1)
    assert shown >= 100  # one day before each deadline, and the weekends before a Monday
    remind_every = FollowUpPolicy().remind_every
    received = start
    view = record(region=region, departement=departement, received=received)
    for hours in range(0, 30 * 24, 7):
        now = received + timedelta(hours=hours)
        routers = (now - received) // remind_every >= 1
        assert ("unanswered" in kinds(view, now, zone)) is routers, hours


def test_the_list_shows_the_reminders_due_in_french(harness: Harness) -> None:
    """On the router's lifecycle and read side: a referral received on Monday 2 March 2026 must be
    acknowledged by the end of Wednesday 4: on Tuesday the list says « Rappel : échéance demain »; an
    acknowledged-and-accepted one says nothing; twelve days later the first, unanswered, says « Sans
    réponse depuis 12 jours »."""
    waiting, accepted = harness.refer(), harness.refer()
    tuesday = datetime(2026, 3, 3, 10, tzinfo=PARIS)
    clock = {"now": tuesday}
    inbox = harness.inbox(now=lambda: clock["now"])
    log_in(inbox, PARTNER)
    take_step(inbox, accepted.referral_id, "received", PARTNER)
    take_step(inbox, accepted.referral_id, "accepted", PARTNER)
    page = inbox.get("/referrals").text
    row = page[page.index(f'data-referral="{waiting.referral_id}"') :].split("</tr>")[0]
    assert "mercredi 4 mars 2026" in row
    badge = '<span class="badge badge-deadline_tomorrow" data-reminder="deadline_tomorrow">'
    assert badge + "Rappel : échéance demain</span>" in row
    other = page[page.index(f'data-referral="{accepted.referral_id}"') :].split("</tr>")[0]
    assert "data-reminder" not in other
    assert "Rappels :\n  1 échéance au prochain jour ouvré" in page
    clock["now"] = datetime(2026, 3, 14, 10, tzinfo=PARIS)  # 12 days after MONDAY 09:00 UTC
    page = inbox.get("/referrals").text
    row = page[page.index(f'data-referral="{waiting.referral_id}"') :].split("</tr>")[0]
    assert "Sans réponse depuis 12 jours" in row and "en retard" in row and "échéance demain" not in row
    assert "1 orientation sans réponse depuis 10 jours ou plus" in page
    # the threshold is the inbox's setting
    later = harness.inbox(now=lambda: clock["now"], settings=InboxSettings(unanswered_after_days=13))
    log_in(later, PARTNER)
    assert "Sans réponse depuis" not in later.get("/referrals").text
