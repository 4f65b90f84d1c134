"""Referral deadlines in business days (French public holidays, per département), and an injectable clock.

Every deadline counts from the referral's request, in the local calendar of where it is handled: a
business day is Monday to Friday and not a public holiday there (`holidays.France`). Public holidays
differ below the region: Moselle, Bas-Rhin and Haut-Rhin (Alsace-Moselle, local law) add Good Friday and
26 December, and each overseas département has its own (abolition of slavery: 971 27 May, 972 22 May,
973 10 June, 974 20 December, 976 27 April...). So the calendar is the département's when it is known,
else the region's (an overseas region is one département; a metropolitan region gets the national
calendar, which is right everywhere but in Alsace-Moselle). "Within N business days" ends at local
midnight after the N-th business day following the request day. The default flow: received within 2,
accepted or declined within 5, first appointment within 15.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

from cepbus.contract.models import ReferralStatus
from services.router.referrals.machine import Actor

S = ReferralStatus
Clock = Callable[[], datetime]

#: Département code -> `holidays.France` subdivision with holidays of its own: Alsace-Moselle (57 is
#: "Moselle", 67 and 68 "Alsace") and the overseas départements.
DEPARTEMENT_SUBDIVISION = {
    "57": "57",
    "67": "6AE",
    "68": "6AE",
    "971": "971",
    "972": "972",
    "973": "973",
    "974": "974",
    "976": "976",
}
#: Region code -> subdivision, when no département is known: an overseas region is one département.
REGION_SUBDIVISION = {"01": "971", "02": "972", "03": "973", "04": "974", "06": "976"}


def system_clock() -> datetime:
    return datetime.now(UTC)


def holiday_subdivision(region_code: str, departement_code: str | None = None) -> str | None:
    """The `holidays.France` subdivision whose calendar applies; None for the national calendar.
    The département decides when it is known (the caller checks it lies in the region)."""
    if departement_code is not None:
        return DEPARTEMENT_SUBDIVISION.get(departement_code)
    return REGION_SUBDIVISION.get(region_code)


@functools.cache
def _holidays(subdivision: str | None, year: int) -> frozenset[date]:
    calendar = holidays.country_holidays("FR", subdiv=subdivision, years=year)
    return frozenset(calendar.keys())


def is_business_day(day: date, region_code: str, departement_code: str | None = None) -> bool:
    """Monday to Friday and not a public holiday of the département (else of the region)."""
    subdivision = holiday_subdivision(region_code, departement_code)
    return day.weekday() < 5 and day not in _holidays(subdivision, day.year)


def add_business_days(
    start: datetime, days: int, region_code: str, zone: ZoneInfo, departement_code: str | None = None
) -> datetime:
    """The end (local midnight, as UTC) of the `days`-th business day after `start`'s local day."""
    day = start.astimezone(zone).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_business_day(day, region_code, departement_code):
            counted += 1
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return end.astimezone(UTC)


@dataclass(frozen=True)
class DeadlinePolicy:
    """Business days allowed from the request, per step (configurable per flow)."""

    received: int = 2
    answered: int = 5
    first_appointment: int = 15

    def pending(self, state: ReferralStatus) -> tuple[str, int, Actor] | None:
        """The deadline a referral in `state` is waiting on: (name, business days, owner), or None."""
        if state == S.REQUESTED:
            return "received", self.received, Actor.RECIPIENT
        if state == S.RECEIVED:
            return "answered", self.answered, Actor.RECIPIENT
        if state in (S.ACCEPTED, S.APPOINTMENT_BOOKED, S.NO_SHOW):
            return "first_appointment", self.first_appointment, Actor.RECIPIENT
        return None


@dataclass(frozen=True)
class Deadline:
    name: str
    business_days: int
    owner: Actor
    due_at: datetime


def pending_deadline(
    policy: DeadlinePolicy,
    state: ReferralStatus,
    requested_at: datetime,
    region_code: str,
    zone: ZoneInfo,
    departement_code: str | None = None,
) -> Deadline | None:
    """The deadline a referral in `state` is waiting on, with its due time in the département's
    calendar (the region's when `departement_code` is None)."""
    pending = policy.pending(state)
    if pending is None:
        return None
    name, days, owner = pending
    due = add_business_days(requested_at, days, region_code, zone, departement_code)
    return Deadline(name, days, owner, due)
