"""What the router derives from what parties send stays bounded (issue #23, item 5): an output that
grew with a party's input could outgrow a message and halt the route that must send it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cepbus.contract import codec
from cepbus.contract.models import ReferralRegulationAlert
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from services.router.referrals.handlers import RELATED_MAX, ReferralLifecycle
from services.router.referrals.store import ReferralStore
from tests.support.factories import MONDAY, RECIPIENT, REQUESTER, referral
from tests.support.fakes import MovableClock


def test_a_drift_alert_lists_the_latest_related_referrals_only(tmp_path: Path) -> None:
    """A requester refers one person again and again: each referral's alert would list every earlier
    one (quadratic, and past a message's size after a few thousand); it lists the latest `RELATED_MAX`
    and counts them all."""
    store = ReferralStore(f"sqlite:///{tmp_path / 'referrals.db'}")
    clock = MovableClock(MONDAY)
    lifecycle = ReferralLifecycle(store, load_directory(), load_reference(), clock=clock)
    sent = [
        referral(REQUESTER, RECIPIENT, person="p-flood", at=MONDAY + timedelta(hours=n)) for n in range(45)
    ]
    alerts: list[ReferralRegulationAlert] = []
    for request in sent:
        clock.now = request.envelope.occurred_at  # the bus records each when it is sent
        alerts += [
            o.event for o in lifecycle.on_requested(request) if isinstance(o.event, ReferralRegulationAlert)
        ]
    store.close()
    last = alerts[-1]
    assert last.alert == "too_many_referrals" and last.referrals_in_window == 45
    assert last.related_referral_ids == [r.referral_id for r in sent[-1 - RELATED_MAX : -1]]
    assert max(len(codec.encode(a)) for a in alerts) < 4_096
