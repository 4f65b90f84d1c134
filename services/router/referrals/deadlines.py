"""Referral deadlines in business days (French public holidays, per region), and an injectable clock.

Every deadline counts from the referral's request, in the region's local calendar: a business day is
Monday to Friday and not a public holiday of the region (`holidays.France`, with the overseas
subdivisions' own holidays). "Within N business days" ends at local midnight after the N-th business
day following the request day. The default flow: received within 2, accepted or declined within 5,
first appointment within 15.
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

#: Region code -> `holidays.France` subdivision with its own holidays (abolition of slavery...).
_SUBDIVISION = {"01": "971", "02": "972", "03": "973", "04": "974", "06": "976"}


def system_clock() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _holidays(region_code: str, year: int) -> frozenset[date]:
    calendar = holidays.country_holidays("FR", subdiv=_SUBDIVISION.get(region_code), years=year)
    return frozenset(calendar.keys())


def is_business_day(day: date, region_code: str) -> bool:
    return day.weekday() < 5 and day not in _holidays(region_code, day.year)


def add_business_days(start: datetime, days: int, region_code: str, zone: ZoneInfo) -> datetime:
    """The end (local midnight, as UTC) of the `days`-th business day after `start`'s local day."""
    day = start.astimezone(zone).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_business_day(day, region_code):
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
    policy: DeadlinePolicy, state: ReferralStatus, requested_at: datetime, region_code: str, zone: ZoneInfo
) -> Deadline | None:
    """The deadline a referral in `state` is waiting on, with its due time."""
    pending = policy.pending(state)
    if pending is None:
        return None
    name, days, owner = pending
    return Deadline(name, days, owner, add_business_days(requested_at, days, region_code, zone))
