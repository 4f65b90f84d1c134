"""Following up an unanswered referral (issue #24, item 3), on the router's clock: a reminder on the working
day before each pending deadline, one every 10 days while unanswered, expiry after 30 days (per recipient
kind if configured), each emitted once; an expired referral is closed by the bus and takes no update."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from cepbus.contract.models import (
    OrganisationKind,
    ReferralExpired,
    ReferralReminderDue,
    ReferralRequested,
    ReminderKind,
)
from cepbus.contract.models import ReferralStatus as S
from cepbus.contract.topics import REFERRAL_EXPIRED, REFERRAL_REMINDER
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.runtime.messages import Outgoing
from services.router.referrals.deadlines import DeadlinePolicy
from services.router.referrals.follow_up import FollowUpPolicy, reminder_time
from services.router.referrals.handlers import ReferralLifecycle, UpdateRefused
from services.router.referrals.store import ReferralStore
from services.router.settings import ReferralSettings
from tests.support.authorship import Admitted
from tests.support.factories import MONDAY, referral, update
from tests.support.fakes import MovableClock

PARIS = ZoneInfo("Europe/Paris")


def follow_ups(store: ReferralStore, clock: MovableClock, policy: FollowUpPolicy) -> ReferralLifecycle:
    return Admitted(
        store,
        load_directory(),
        load_reference(),
        deadlines=DeadlinePolicy(2, 5, 15),
        clock=clock,
        follow_up=policy,
    )


def reminders(outputs: list[Outgoing]) -> list[ReferralReminderDue]:
    found = [o.event for o in outputs if o.topic == REFERRAL_REMINDER.name]
    assert all(isinstance(e, ReferralReminderDue) for e in found)
    return found  # type: ignore[return-value]


def expired(outputs: list[Outgoing]) -> list[ReferralExpired]:
    found = [o.event for o in outputs if o.topic == REFERRAL_EXPIRED.name]
    assert all(isinstance(e, ReferralExpired) for e in found)
    return found  # type: ignore[return-value]


def test_the_reminder_falls_at_8_on_the_working_day_before_the_deadline() -> None:
    wednesday_due = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)  # end of Wednesday 4 March, Paris
    assert reminder_time(wednesday_due, "11", PARIS, None) == datetime(2026, 3, 3, 8, 0, tzinfo=PARIS)
    monday_due = datetime(2026, 3, 9, 23, 0, tzinfo=UTC)  # end of Monday 9: reminded on Friday 6
    assert reminder_time(monday_due, "11", PARIS, None).date() == date(2026, 3, 6)
    after_holiday = datetime(2026, 5, 11, 22, 0, tzinfo=UTC)  # Monday 11 May; Friday 8 May is a holiday
    assert reminder_time(after_holiday, "11", PARIS, None).date() == date(2026, 5, 7)


def test_the_recipient_is_reminded_the_working_day_before_its_deadline_once(
    store: ReferralStore, clock: MovableClock
) -> None:
    lifecycle = follow_ups(store, clock, FollowUpPolicy())
    ref = referral()  # Monday 2 March: received due at the end of Wednesday 4 (Paris)
    lifecycle.on_requested(ref)
    clock.now = datetime(2026, 3, 3, 6, 30, tzinfo=UTC)  # Tuesday 07:30 Paris: not yet
    assert reminders(lifecycle.sweep()) == []
    clock.now = datetime(2026, 3, 3, 7, 30, tzinfo=UTC)  # Tuesday 08:30 Paris
    [reminder] = reminders(lifecycle.sweep())
    assert reminder.reminder == ReminderKind.DEADLINE_TOMORROW and reminder.deadline == "received"
    assert reminder.due_at == datetime(2026, 3, 4, 23, 0, tzinfo=UTC) and reminder.status == S.REQUESTED
    assert (
        reminder.recipient_org_id == ref.recipient_org_id
        and reminder.envelope.producer_org_id == "cep-bus-router"
    )
    clock.now += timedelta(hours=3)
    assert reminders(lifecycle.sweep()) == []  # once per deadline
    lifecycle.on_status(update(ref, S.RECEIVED))  # the next deadline (answered, end of Monday 9)
    clock.now = datetime(2026, 3, 6, 7, 30, tzinfo=UTC)  # Friday 08:30 Paris: the working day before
    [answer] = reminders(lifecycle.sweep())
    assert answer.deadline == "answered" and answer.envelope.event_id != reminder.envelope.event_id


def test_unanswered_every_10_days_then_expired_after_30_and_closed_to_updates(
    store: ReferralStore, clock: MovableClock
) -> None:
    lifecycle = follow_ups(
        store, clock, FollowUpPolicy(remind_every=timedelta(days=10), expire_after=timedelta(days=30))
    )
    ref = referral()
    lifecycle.on_requested(ref)
    clock.now = MONDAY + timedelta(days=10, minutes=1)
    [tenth] = [r for r in reminders(lifecycle.sweep()) if r.reminder == ReminderKind.UNANSWERED]
    assert tenth.days_waiting == 10
    assert [r for r in reminders(lifecycle.sweep()) if r.reminder == ReminderKind.UNANSWERED] == []
    clock.now = MONDAY + timedelta(days=20, minutes=1)
    [twentieth] = [r for r in reminders(lifecycle.sweep()) if r.reminder == ReminderKind.UNANSWERED]
    assert twentieth.days_waiting == 20 and twentieth.envelope.event_id != tenth.envelope.event_id
    clock.now = MONDAY + timedelta(days=30, minutes=1)
    outputs = lifecycle.sweep()
    [closed] = expired(outputs)
    assert reminders(outputs) == []
    assert closed.expired_after_days == 30 and closed.status_at_expiry == S.REQUESTED
    assert closed.received_at == MONDAY and closed.requester_org_id == ref.requester_org_id
    record = store.get(ref.referral_id)
    assert record is not None and record.state == S.EXPIRED and record.due_at_ms is None
    [step] = store.history(ref.referral_id)
    assert (step.status, step.actor_org_id) == (S.EXPIRED, "cep-bus-router")
    assert lifecycle.sweep() == []  # once
    with pytest.raises(UpdateRefused) as late:
        lifecycle.on_status(update(ref, S.ACCEPTED))
    assert late.value.reason == "terminal_state" and "expired" in late.value.detail
    assert store.get(ref.referral_id).state == S.EXPIRED  # type: ignore[union-attr]


def test_an_answered_referral_is_neither_chased_nor_expired(
    store: ReferralStore, clock: MovableClock
) -> None:
    lifecycle = follow_ups(
        store, clock, FollowUpPolicy(remind_every=timedelta(days=10), expire_after=timedelta(days=30))
    )
    ref = referral()
    lifecycle.on_requested(ref)
    lifecycle.on_status(update(ref, S.RECEIVED))
    lifecycle.on_status(update(ref, S.ACCEPTED))
    clock.now = MONDAY + timedelta(days=60)
    outputs = lifecycle.sweep()
    assert expired(outputs) == [] and all(r.reminder != ReminderKind.UNANSWERED for r in reminders(outputs))
    assert store.get(ref.referral_id).state == S.ACCEPTED  # type: ignore[union-attr]


def test_the_reminder_interval_is_configurable_per_recipient_kind(
    store: ReferralStore, clock: MovableClock
) -> None:
    policy = FollowUpPolicy(remind_every=timedelta(days=10), remind_every_by_kind={"apec": timedelta(days=3)})
    lifecycle = follow_ups(store, clock, policy)
    to_apec, to_opco = referral(), referral(recipient="opco-sante", kind=OrganisationKind.OPCO)
    lifecycle.on_requested(to_apec)
    lifecycle.on_requested(to_opco)
    clock.now = MONDAY + timedelta(days=3, minutes=1)
    reminded = [r for r in reminders(lifecycle.sweep()) if r.reminder == ReminderKind.UNANSWERED]
    assert [r.referral_id for r in reminded] == [to_apec.referral_id]


def test_the_expiry_is_configurable_per_recipient_kind(store: ReferralStore, clock: MovableClock) -> None:
    lifecycle = follow_ups(
        store,
        clock,
        FollowUpPolicy(expire_after=timedelta(days=30), expire_after_by_kind={"apec": timedelta(days=5)}),
    )
    to_apec: ReferralRequested = referral()
    to_opco = referral(recipient="opco-sante", kind=OrganisationKind.OPCO)
    lifecycle.on_requested(to_apec)
    lifecycle.on_requested(to_opco)
    clock.now = MONDAY + timedelta(days=5, minutes=1)
    [closed] = expired(lifecycle.sweep())
    assert closed.referral_id == to_apec.referral_id and closed.expired_after_days == 5
    assert store.get(to_opco.referral_id).state == S.REQUESTED  # type: ignore[union-attr]


def test_the_settings_read_the_expiry_per_kind_and_refuse_an_unknown_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CEPBUS_REFERRALS_EXPIRE_AFTER_BY_KIND", '{"opco": "P45D"}')
    monkeypatch.setenv("CEPBUS_REFERRALS_REMIND_EVERY", "P7D")
    policy = ReferralSettings().follow_up_policy()
    assert policy.expiry(OrganisationKind.OPCO) == timedelta(days=45)
    assert policy.expiry(OrganisationKind.APEC) == timedelta(days=30)
    assert policy.remind_every == timedelta(days=7)
    monkeypatch.setenv("CEPBUS_REFERRALS_REMIND_EVERY_BY_KIND", '{"training": "P3D", "opco": "PT0S"}')
    per_kind = ReferralSettings().follow_up_policy()
    assert per_kind.reminder_interval(OrganisationKind.TRAINING) == timedelta(days=3)
    assert per_kind.reminder_interval(OrganisationKind.OPCO) == timedelta(0)
    assert per_kind.reminder_interval(OrganisationKind.APEC) == timedelta(days=7)
    monkeypatch.setenv("CEPBUS_REFERRALS_EXPIRE_AFTER", "PT40S")  # the demo's month in a minute
    assert ReferralSettings().follow_up_policy().expire_after == timedelta(seconds=40)
    for bad in ('{"pigeon": "P45D"}', '{"opco": "PT0S"}'):
        monkeypatch.setenv("CEPBUS_REFERRALS_EXPIRE_AFTER_BY_KIND", bad)
        with pytest.raises(ValidationError, match="expire_after_by_kind"):
            ReferralSettings()
