"""Following up a referral its recipient has not answered (issue #24, item 3): reminders before a deadline
and while unanswered, then expiry. Pure: a referral's record, the policy and the bus's clock in, what is
due out; `ReferralLifecycle.sweep` emits each once (the store remembers which) and applies the expiry.

- **The working day before a deadline**: a reminder at 08:00 (the region's time) on the business day
  before the day the pending deadline falls due (`deadline_tomorrow`), once per deadline.
- **Unanswered**: a referral neither accepted nor declined (`requested` or `received`) gets a reminder
  every `remind_every` (10 days, as DORA reminds) after the router received it (`unanswered`).
- **Expiry**: unanswered `expire_after` (30 days by default, as DORA; per recipient kind in
  `expire_after_by_kind`) after the router received it, the referral expires: a step owned by the bus.

Durations, not day counts, so that the demo can run a month's follow-up in a minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cepbus.contract.models import OrganisationKind, ReferralStatus, ReminderKind
from cepbus.reference.calendar import deadline_last_day, is_business_day
from services.router.referrals.store import ReferralRecord

#: The states of a referral its recipient has not answered yet (neither accepted nor declined).
UNANSWERED: frozenset[ReferralStatus] = frozenset({ReferralStatus.REQUESTED, ReferralStatus.RECEIVED})
REMIND_AT = time(8, 0)


@dataclass(frozen=True)
class FollowUpPolicy:
    remind_every: timedelta = timedelta(days=10)  # zero: no reminder while unanswered
    expire_after: timedelta = timedelta(days=30)
    expire_after_by_kind: Mapping[str, timedelta] = field(default_factory=dict)
    remind_every_by_kind: Mapping[str, timedelta] = field(default_factory=dict)

    def expiry(self, kind: OrganisationKind) -> timedelta:
        return self.expire_after_by_kind.get(kind.value, self.expire_after)

    def reminder_interval(self, kind: OrganisationKind) -> timedelta:
        return self.remind_every_by_kind.get(kind.value, self.remind_every)


@dataclass(frozen=True)
class Reminder:
    key: str  # what the store remembers, so that each is sent once
    kind: ReminderKind
    deadline: str | None
    due_at: datetime | None
    days_waiting: int


def waiting(record: ReferralRecord, now: datetime) -> timedelta:
    """How long since the router received the referral (its clock, never the requester's)."""
    return max(timedelta(0), now - datetime.fromtimestamp(record.clock_start_ms / 1000, UTC))


def reminder_time(
    due_at: datetime, region_code: str, zone: ZoneInfo, departement_code: str | None
) -> datetime:
    """08:00 local on the business day before the deadline's last day (a deadline falls due at the
    midnight that ends its last day: 23:00 UTC on Wednesday is the end of Wednesday in Paris)."""
    day = deadline_last_day(due_at, zone) - timedelta(days=1)
    while not is_business_day(day, region_code, departement_code):
        day -= timedelta(days=1)
    return datetime.combine(day, REMIND_AT, zone).astimezone(UTC)


def reminders_due(
    record: ReferralRecord, now: datetime, policy: FollowUpPolicy, zone: ZoneInfo
) -> list[Reminder]:
    """The reminders of an open referral due at `now` (the store drops those already sent)."""
    due: list[Reminder] = []
    waited = waiting(record, now)
    if record.due_name is not None and record.due_at_ms is not None:
        due_at = datetime.fromtimestamp(record.due_at_ms / 1000, UTC)
        if reminder_time(due_at, record.region_code, zone, record.departement_code) <= now < due_at:
            key = f"deadline:{record.due_name}:{record.due_at_ms}"
            due.append(Reminder(key, ReminderKind.DEADLINE_TOMORROW, record.due_name, due_at, waited.days))
    every = policy.reminder_interval(record.recipient_kind)
    if record.state in UNANSWERED and every > timedelta(0):
        rounds = waited // every
        if rounds >= 1 and waited < policy.expiry(record.recipient_kind):
            due.append(Reminder(f"unanswered:{rounds}", ReminderKind.UNANSWERED, None, None, waited.days))
    return due


def expires(record: ReferralRecord, now: datetime, policy: FollowUpPolicy) -> bool:
    """True when the referral is still unanswered its recipient kind's time after receipt."""
    return record.state in UNANSWERED and waiting(record, now) >= policy.expiry(record.recipient_kind)


__all__ = [
    "UNANSWERED",
    "FollowUpPolicy",
    "Reminder",
    "expires",
    "reminder_time",
    "reminders_due",
    "waiting",
]
