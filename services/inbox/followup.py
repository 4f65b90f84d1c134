"""The reminders a referral is due, as the list of referrals shows them (issue #24): computed here, on the
server, from the read side's fields alone, in the referral's region's time (Paris for metropolitan
France, the overseas regions' own zones).

- **« Rappel : échéance demain »**: the pending deadline's last day is the next working day after today,
  the day the router sends its `deadline_tomorrow` reminder (at 08:00; docs/referrals.md, "Reminders and
  expiry"). Today a Friday, a deadline ending on Monday; a Saturday too.
- **« Sans réponse depuis N jours »**: the referral is neither accepted nor declined (`requested` or
  `received`) and N whole days (of 24 hours) have passed since the router received it (its clock, never
  the requester's: `received_at_ms`, else `requested_at_ms` from an older router), N at least
  `CEPBUS_INBOX_UNANSWERED_AFTER_DAYS` (10, the router's first `unanswered` reminder).

Working days are the router's (`services/router/referrals/deadlines.py`, which the inbox may not
import): Monday to Friday but French public holidays, those of the département when it has its own
(Alsace-Moselle, the overseas départements), else of the region. The tables below are the router's;
`tests/unit/inbox/test_inbox_followup.py` holds them, and the calendar, to the router's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from cepbus.contract.models import ReferralStatus
from cepbus.contract.readside import ReferralRecordView
from cepbus.runtime.logs import get_logger

log = get_logger(service="inbox")

#: The states of a referral its recipient has not answered yet (neither accepted nor declined).
UNANSWERED: frozenset[ReferralStatus] = frozenset({ReferralStatus.REQUESTED, ReferralStatus.RECEIVED})
#: Département code -> `holidays.France` subdivision with holidays of its own (the router's table).
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
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def holiday_subdivision(region_code: str, departement_code: str | None = None) -> str | None:
    """The `holidays.France` subdivision whose calendar applies; None for the national calendar."""
    if departement_code is not None:
        return DEPARTEMENT_SUBDIVISION.get(departement_code)
    return REGION_SUBDIVISION.get(region_code)


@functools.cache
def _holidays(subdivision: str | None, year: int) -> frozenset[date]:
    try:
        import holidays
    except ImportError:  # an install of `cep-bus[inbox]` alone: the deployed image has it (services)
        log.warning("inbox_no_holiday_calendar", detail="holidays is not installed: working days are Mon-Fri")
        return frozenset()
    return frozenset(holidays.country_holidays("FR", subdiv=subdivision, years=year).keys())


def is_working_day(day: date, region_code: str, departement_code: str | None = None) -> bool:
    """Monday to Friday and not a public holiday of the département (else of the region)."""
    subdivision = holiday_subdivision(region_code, departement_code)
    return day.weekday() < 5 and day not in _holidays(subdivision, day.year)


def next_working_day(day: date, region_code: str, departement_code: str | None = None) -> date:
    """The first working day after `day`."""
    day += timedelta(days=1)
    while not is_working_day(day, region_code, departement_code):
        day += timedelta(days=1)
    return day


def local(ms: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def last_day(due_at_ms: int, zone: ZoneInfo) -> date:
    """The last day of a deadline: the router's deadlines end at local midnight after that day."""
    return local(due_at_ms - 1, zone).date()


@dataclass(frozen=True)
class Badge:
    """A reminder due, as the list shows it: `kind` is the router's reminder (`deadline_tomorrow`,
    `unanswered`), `text` the badge."""

    kind: str
    text: str


def deadline_tomorrow(record: ReferralRecordView, now_ms: int, zone: ZoneInfo) -> bool:
    """The pending deadline, not passed, ends on the next working day after today (the region's day)."""
    due = record.pending_deadline_due_at_ms
    if not record.open or record.pending_deadline is None or due is None or due <= now_ms:
        return False
    today = local(now_ms, zone).date()
    return last_day(due, zone) == next_working_day(today, record.region_code, record.departement_code)


def days_unanswered(record: ReferralRecordView, now_ms: int) -> int | None:
    """Whole days since the router received a referral its recipient has neither accepted nor
    declined; None once answered (or closed)."""
    if not record.open or record.status not in UNANSWERED:
        return None
    start = record.received_at_ms if record.received_at_ms is not None else record.requested_at_ms
    return max(0, now_ms - start) // _DAY_MS


def badges(
    record: ReferralRecordView, now_ms: int, zone: ZoneInfo, unanswered_after_days: int
) -> list[Badge]:
    """The reminders due on an open referral at `now_ms`."""
    found = []
    if deadline_tomorrow(record, now_ms, zone):
        found.append(Badge("deadline_tomorrow", "Rappel : échéance demain"))
    days = days_unanswered(record, now_ms)
    if days is not None and days >= unanswered_after_days:
        found.append(Badge("unanswered", f"Sans réponse depuis {days} jours"))
    return found


__all__ = [
    "UNANSWERED",
    "Badge",
    "badges",
    "days_unanswered",
    "deadline_tomorrow",
    "is_working_day",
    "last_day",
    "next_working_day",
]
