"""Referral clocks run on the router's own clock, never on a sender's claimed `occurred_at` (issue #23,
finding 6): a requester that backdates its request by a month does not make the recipient late on
arrival, a recipient that backdates a late step is still late, and a backdated referral does not escape
the drift window. The claimed times are kept and shown beside, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cepbus.contract.models import OrganisationKind, ReferralDeadlineBreached, ReferralStatus
from cepbus.contract.topics import REFERRAL_ALERT, REFERRAL_DEADLINE_BREACHED
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.runtime.messages import Outgoing
from services.router.referrals.deadlines import DeadlinePolicy
from services.router.referrals.handlers import ReferralLifecycle
from services.router.referrals.http import read_referral
from services.router.referrals.store import ReferralStore
from tests.support.authorship import Admitted
from tests.support.factories import MONDAY, RECIPIENT, REQUESTER, referral, update
from tests.support.fakes import MovableClock

S = ReferralStatus
#: Monday 2 March 2026, 10:00 Paris: "received" is due at the end of Wednesday 4 March (Paris).
RECEIVED_DUE = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def lifecycle(store: ReferralStore, clock: MovableClock) -> ReferralLifecycle:
    return Admitted(
        store, load_directory(), load_reference(), deadlines=DeadlinePolicy(2, 5, 15), clock=clock
    )


def breaches(outputs: list[Outgoing]) -> list[ReferralDeadlineBreached]:
    return [o.event for o in outputs if isinstance(o.event, ReferralDeadlineBreached)]


def test_a_request_backdated_by_30_days_is_not_late_until_its_real_deadline(
    lifecycle: ReferralLifecycle, store: ReferralStore, clock: MovableClock
) -> None:
    claimed = MONDAY - timedelta(days=30)
    backdated = referral(REQUESTER, RECIPIENT, at=claimed)
    lifecycle.on_requested(backdated)
    assert breaches(lifecycle.sweep()) == []  # before: a "received" breach at once, the deadline long past
    record = store.get(backdated.referral_id)
    assert record is not None
    assert (record.requested_at_ms, record.received_at_ms) == (ms(claimed), ms(MONDAY))
    assert record.due_at_ms == ms(RECEIVED_DUE)
    clock.now = RECEIVED_DUE - timedelta(minutes=30)
    assert breaches(lifecycle.sweep()) == []
    clock.now = RECEIVED_DUE + timedelta(minutes=30)
    [breach] = breaches(lifecycle.sweep())
    assert breach.deadline == "received" and breach.due_at == RECEIVED_DUE
    # the read side shows the claim beside the router's receipt
    view = read_referral(store, backdated.referral_id)
    assert view is not None
    assert (view.referral.requested_at_ms, view.referral.received_at_ms) == (ms(claimed), ms(MONDAY))


def test_a_redelivered_request_keeps_its_first_receipt(
    lifecycle: ReferralLifecycle, store: ReferralStore, clock: MovableClock
) -> None:
    request = referral()
    lifecycle.on_requested(request)
    clock.now = MONDAY + timedelta(days=3)
    lifecycle.on_requested(request)
    record = store.get(request.referral_id)
    assert record is not None and record.received_at_ms == ms(MONDAY) and record.due_at_ms == ms(RECEIVED_DUE)


def test_a_late_step_backdated_by_its_sender_is_still_late_and_shows_both_times(
    lifecycle: ReferralLifecycle, store: ReferralStore, clock: MovableClock
) -> None:
    request = referral()
    lifecycle.on_requested(request)
    clock.now = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)  # Friday: two days late
    claimed = MONDAY + timedelta(hours=1)  # the recipient says it received it on Monday
    [breach] = breaches(lifecycle.on_status(update(request, S.RECEIVED, at=claimed)))
    assert breach.deadline == "received"
    [step] = store.history(request.referral_id)
    assert (step.occurred_at_ms, step.received_at_ms) == (ms(claimed), ms(clock.now))
    # the next deadline still counts from the router's receipt of the request
    record = store.get(request.referral_id)
    assert record is not None and record.due_name == "answered"
    assert record.due_at_ms == ms(datetime(2026, 3, 9, 23, 0, tzinfo=UTC))  # end of Monday 9 March, Paris


def test_a_referral_backdated_out_of_the_window_still_raises_ping_pong(
    lifecycle: ReferralLifecycle, clock: MovableClock
) -> None:
    """Sent back a day later, but claimed 120 days earlier (outside the 90-day window): on the claimed
    times the bounce would pass unseen."""
    lifecycle.on_requested(referral(REQUESTER, RECIPIENT, person="p-bounce"))
    clock.now = MONDAY + timedelta(days=1)
    back = referral(
        RECIPIENT,
        REQUESTER,
        person="p-bounce",
        at=MONDAY - timedelta(days=120),
        kind=OrganisationKind.REGIONAL_CEP,
    )
    alerts = [o for o in lifecycle.on_requested(back) if o.topic == REFERRAL_ALERT.name]
    assert [a.event.alert for a in alerts] == ["ping_pong"]  # type: ignore[attr-defined]
    assert REFERRAL_DEADLINE_BREACHED.name not in {o.topic for o in lifecycle.sweep()}
