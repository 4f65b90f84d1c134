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

Working days are the router's: one calendar for both, `cepbus.reference.calendar` (Monday to Friday but
French public holidays, those of the département when it has its own, else of the region).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cepbus.contract.models import ReferralStatus
from cepbus.contract.readside import ReferralRecordView
from cepbus.reference.calendar import deadline_last_day, next_business_day

#: The states of a referral its recipient has not answered yet (neither accepted nor declined).
UNANSWERED: frozenset[ReferralStatus] = frozenset({ReferralStatus.REQUESTED, ReferralStatus.RECEIVED})
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def local(ms: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


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
    return deadline_last_day(due, zone) == next_business_day(
        today, record.region_code, record.departement_code
    )


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
]
