"""Working days in France, per département: one calendar for every part of the bus that counts them (the
router's referral deadlines and reminders, the inbox's reminder badges).

A working day is Monday to Friday and not a public holiday where the referral is handled
(`holidays.France`). Public holidays differ below the region: Moselle, Bas-Rhin and Haut-Rhin
(Alsace-Moselle, local law) add Good Friday and 26 December, and each overseas département has its own
(abolition of slavery: 971 27 May, 972 22 May, 973 10 June, 974 20 December, 976 27 April...). So the
calendar is the département's when it is known, else the region's (an overseas region is one
département; a metropolitan region gets the national calendar, which is right everywhere but in
Alsace-Moselle).
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays

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


def next_business_day(day: date, region_code: str, departement_code: str | None = None) -> date:
    """The first working day after `day`."""
    day += timedelta(days=1)
    while not is_business_day(day, region_code, departement_code):
        day += timedelta(days=1)
    return day


def deadline_last_day(due_at: datetime | int, zone: ZoneInfo) -> date:
    """The last day of a deadline (an aware datetime, or milliseconds since the epoch): a referral
    deadline falls due at the local midnight that ends its last day (23:00 UTC on a Wednesday is the
    end of that Wednesday in Paris)."""
    if isinstance(due_at, int):
        due_at = datetime.fromtimestamp(due_at / 1000, UTC)
    return (due_at.astimezone(zone) - timedelta(microseconds=1)).date()


__all__ = [
    "DEPARTEMENT_SUBDIVISION",
    "REGION_SUBDIVISION",
    "deadline_last_day",
    "holiday_subdivision",
    "is_business_day",
    "next_business_day",
]
