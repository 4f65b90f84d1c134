"""Issue #24, item 3: the router's reminders and expiries become emails: a reminder to the recipient with
the deadline's last day in the region's time, an expiry to both parties; nothing of the person."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from cepbus.contract.models import (
    OrganisationKind,
    ReferralExpired,
    ReferralReminderDue,
    ReferralStatus,
    ReminderKind,
    new_envelope,
)
from services.mailer.decisions import expired_notices, reminder_notices
from services.mailer.kinds import EXPIRED, REMINDER, Party


def reminder(due_at: datetime | None, region: str = "84") -> ReferralReminderDue:
    return ReferralReminderDue(
        envelope=new_envelope(ReferralReminderDue, producer_org_id="cep-bus-router", person_pseudonym="p-x"),
        referral_id="ref-1",
        requester_org_id="cep-r84",
        recipient_org_id="transitions-pro-r84",
        recipient_kind=OrganisationKind.TRANSITIONS_PRO,
        region_code=region,
        reminder=ReminderKind.DEADLINE_TOMORROW if due_at else ReminderKind.UNANSWERED,
        deadline="received" if due_at else None,
        due_at=due_at,
        days_waiting=10,
        status=ReferralStatus.REQUESTED,
    )


def test_a_reminder_goes_to_the_recipient_with_the_deadlines_last_day_in_the_regions_time() -> None:
    end_of_wednesday_paris = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)
    [notice] = reminder_notices(reminder(end_of_wednesday_paris), ZoneInfo("Europe/Paris"))
    assert (notice.kind, notice.party, notice.org_id) == (REMINDER, Party.RECIPIENT, "transitions-pro-r84")
    assert notice.deadline == date(2026, 3, 4) and notice.days == 10
    end_of_wednesday_guadeloupe = datetime(2026, 3, 5, 4, 0, tzinfo=UTC)  # Thursday 00:00 at UTC-4
    [overseas] = reminder_notices(reminder(end_of_wednesday_guadeloupe, "01"), ZoneInfo("America/Guadeloupe"))
    assert overseas.deadline == date(2026, 3, 4)
    [unanswered] = reminder_notices(reminder(None), ZoneInfo("Europe/Paris"))
    assert unanswered.deadline is None and unanswered.days == 10


def test_an_expiry_goes_to_both_parties() -> None:
    event = ReferralExpired(
        envelope=new_envelope(ReferralExpired, producer_org_id="cep-bus-router", person_pseudonym="p-x"),
        referral_id="ref-1",
        requester_org_id="cep-r84",
        recipient_org_id="transitions-pro-r84",
        recipient_kind=OrganisationKind.TRANSITIONS_PRO,
        region_code="84",
        status_at_expiry=ReferralStatus.RECEIVED,
        expired_after_days=30,
        received_at=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )
    notices = expired_notices(event)
    assert {(n.kind, n.org_id) for n in notices} == {(EXPIRED, "cep-r84"), (EXPIRED, "transitions-pro-r84")}
    assert all(n.days == 30 and n.status == ReferralStatus.EXPIRED for n in notices)
