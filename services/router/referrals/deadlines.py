"""Referral deadlines in business days, and an injectable clock.

Every deadline counts from the referral's request, in the local calendar of where it is handled
(`cepbus.reference.calendar`: French public holidays, per département). "Within N business days" ends at
local midnight after the N-th business day following the request day. The default flow: received within 2,
accepted or declined within 5, first appointment within 15.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cepbus.contract.models import ReferralStatus
from cepbus.reference.calendar import is_business_day
from services.router.referrals.machine import Actor

S = ReferralStatus
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


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
