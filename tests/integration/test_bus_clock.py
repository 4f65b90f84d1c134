"""The bus's clock, not the sender's, end to end on the session bus (issue #23, finding 6): a requester
backdates a `ReferralRequested` by 30 days; the router (its own process) starts no deadline from the
claim, so several sweeps later no breach, the read side shows the claim beside the router's receipt, and
the breach comes only once the router's own deadline has passed. The ledger recorded the request today:
an audit of today's days counts it, one of last month does not."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cepbus.auditlog.context import reference_period
from cepbus.auditlog.report import build_report
from cepbus.contract.models import OrganisationKind, ReferralRequested, new_envelope
from services.ledger.store import SqlLedgerStore
from tests.integration.test_referral_loop import http_json, pass_the_routers_deadline
from tests.support.bus import RunningBus, wait_for_ids
from tests.support.factories import service_id

pytestmark = pytest.mark.integration


def backdated_referral(days: int) -> ReferralRequested:
    """cep-r53 refers a person to its region's SPRO (which no partner process answers), claiming it did so
    `days` days ago."""
    person = f"p-backdated-{uuid.uuid4().hex[:8]}"
    return ReferralRequested(
        envelope=new_envelope(
            ReferralRequested,
            producer_org_id="cep-r53",
            person_pseudonym=person,
            occurred_at=datetime.now(UTC) - timedelta(days=days),
        ),
        referral_id=str(uuid.uuid4()),
        requester_org_id="cep-r53",
        recipient_org_id="spro-r53",
        recipient_kind=OrganisationKind.SPRO,
        region_code="53",
        reason="orientation vers le SPRO",
        consent_to_share=False,
    )


def wait_referral(bus: RunningBus, referral: ReferralRequested, timeout_s: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code, view = http_json(bus, f"/referrals/{referral.referral_id}", as_org=referral.requester_org_id)
        if code == 200:
            return view  # type: ignore[no-any-return]
        time.sleep(0.25)
    raise AssertionError(f"the router never tracked referral {referral.referral_id}")


def test_a_request_backdated_by_30_days_breaches_only_at_the_routers_deadline(bus: RunningBus) -> None:
    referral = backdated_referral(30)
    with bus.publisher() as publisher:
        publisher.publish(referral)
    view = wait_referral(bus, referral)
    record = view["referral"]
    assert isinstance(record, dict)
    claimed_ms = int(referral.envelope.occurred_at.timestamp() * 1000)
    now_ms = int(time.time() * 1000)
    assert record["requested_at_ms"] == claimed_ms  # the claim, kept and shown
    assert abs(record["received_at_ms"] - now_ms) < 120_000  # the router's receipt
    assert record["pending_deadline"] == "received" and record["pending_deadline_due_at_ms"] > now_ms
    time.sleep(3.5)  # three sweeps (CEPBUS_REFERRALS_SWEEP_INTERVAL_S=1): before the fix, a breach at once
    code, view = http_json(bus, f"/referrals/{referral.referral_id}", as_org="cep-r53")
    assert code == 200 and view["breaches"] == []
    breach_id = service_id(referral.referral_id, "deadline-breached:received")
    pass_the_routers_deadline(bus, referral.referral_id)
    assert not wait_for_ids(bus, {breach_id}), "the breach never reached the ledger"
    code, view = http_json(bus, f"/referrals/{referral.referral_id}", as_org="cep-r53")
    assert [b["deadline"] for b in view["breaches"]] == ["received"]


def test_the_ledger_puts_a_backdated_event_in_the_period_it_recorded_it(bus: RunningBus) -> None:
    referral = backdated_referral(30)
    with bus.publisher() as publisher:
        publisher.publish(referral)
    assert not wait_for_ids(bus, {str(referral.event_id)}), "the request never reached the ledger"
    with SqlLedgerStore(bus.ledger_url) as store:
        records = [entry.record for entry in store.entries()]
    [mine] = [r for r in records if r.event_id == str(referral.event_id)]
    assert mine.occurred_at_ms < mine.recorded_at_ms - 29 * 86_400_000  # the claim is kept in the leaf
    today = datetime.fromtimestamp(mine.recorded_at_ms / 1000, UTC).date()
    claimed = referral.envelope.occurred_at.date()
    ours = [r for r in records if r.facts.get("referral_id") == referral.referral_id]

    def referrals_in(first: object, last: object) -> int:
        period = reference_period(str(first), str(last))
        return int(build_report(ours, region="53", period=period)["referrals"]["total"])

    assert referrals_in(today - timedelta(days=1), today + timedelta(days=1)) == 1
    assert referrals_in(claimed - timedelta(days=1), claimed + timedelta(days=1)) == 0
