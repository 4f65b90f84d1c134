"""The referral part of `cep-bus demo`: example partners answering in a thread, the status updates
they will send (so the ledger check covers them), a few forged updates the router must refuse, and
the figures of the run."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cepbus.directory import load_directory
from cepbus.models import ReferralRequested, ReferralStatusChanged, derived_event_id, new_envelope
from cepbus.partner_example import ExamplePartner, plan_steps
from cepbus.settings import BrokerSettings
from cepbus.signing import dev_private_key, sign_status

DEMO_REFUSAL_RATE = 0.15
DEMO_PARTNER_SEED = 4


def expected_status_ids(referrals: Sequence[ReferralRequested]) -> list[str]:
    """Event ids of every update the demo's example partners send (deterministic)."""
    return [
        str(derived_event_id(r.referral_id, f"status:{r.recipient_org_id}:{step.status.value}"))
        for r in referrals
        for step in plan_steps(r.referral_id, 0.0, DEMO_REFUSAL_RATE, DEMO_PARTNER_SEED)
    ]


def forged_updates(referrals: Sequence[ReferralRequested]) -> list[ReferralStatusChanged]:
    """Three updates the router must refuse: unsigned, signed with another organisation's key, and
    signed by an organisation posing as the recipient. Their ids are fixed, so reruns add nothing."""
    if not referrals:
        return []
    target = referrals[0]
    recipient = target.recipient_org_id

    def base(purpose: str, producer: str, actor: str) -> ReferralStatusChanged:
        return ReferralStatusChanged(
            envelope=new_envelope(
                ReferralStatusChanged,
                producer_org_id=producer,
                causation=target.envelope,
                event_id=derived_event_id(target.referral_id, f"demo-forged:{purpose}"),
            ),
            referral_id=target.referral_id,
            status="completed",
            actor_org_id=actor,
            reason_code="accompaniment_engaged",
        )

    unsigned = base("unsigned", recipient, recipient)
    wrong_key = sign_status(base("wrong-key", recipient, recipient), recipient, dev_private_key("opco-sante"))
    posing = sign_status(base("posing", "opco-sante", recipient), "opco-sante", dev_private_key("opco-sante"))
    return [unsigned, wrong_key, posing]


@dataclass
class PartnersThread:
    """The example partners of the whole directory, in one thread of the demo process."""

    broker: BrokerSettings
    stop: threading.Event = field(default_factory=threading.Event)
    partner: ExamplePartner | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.partner = ExamplePartner(
            load_directory().org_ids(),
            delay_s=0.0,
            refusal_rate=DEMO_REFUSAL_RATE,
            seed=DEMO_PARTNER_SEED,
            settings=self.broker,
            group_id=f"cepbus-demo-partners-{uuid.uuid4().hex[:8]}",
        )
        self.thread = threading.Thread(
            target=self.partner.run, args=(self.stop,), name="demo-partners", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


def referral_figures(
    database_url: str,
    referral_ids: Sequence[str],
    scrape_router: Callable[[], dict[str, float]],
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Where this run's referrals ended, once the router has applied every update (or the timeout);
    the router's counters are read after that wait."""
    from services.router.referrals.machine import TERMINAL
    from services.router.referrals.store import ReferralStore

    store = ReferralStore(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            states = store.count_by_state(referral_ids)
            closed = sum(n for state, n in states.items() if state in {s.value for s in TERMINAL})
            if closed >= len(referral_ids) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        breaches = store.count_breaches(referral_ids)
        router_metrics = scrape_router()
    finally:
        store.close()
    return {
        "referrals_completed": states.get("completed", 0),
        "referrals_declined": states.get("declined", 0),
        "referrals_open": len(referral_ids) - closed,
        "referral_states": dict(sorted(states.items())),
        "deadline_breaches": breaches,
        "rejected_updates": int(router_metrics.get("cepbus_referral_updates_rejected_total", 0.0)),
        "appointments_held": int(router_metrics.get("cepbus_referral_appointment_delay_seconds_count", 0.0)),
    }
