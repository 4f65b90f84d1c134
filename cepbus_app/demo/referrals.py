"""The referral part of `cep-bus demo`: example partners answering in a thread, the status updates
they will send (so the ledger check covers them), a few forged updates the router must refuse, and
the figures of the run."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cepbus.contract.models import ReferralRequested, ReferralStatusChanged, derived_event_id, new_envelope
from cepbus.contract.signatures import sign_status
from cepbus.reference.directory import load_directory
from cepbus.runtime.settings import BrokerSettings
from cepbus.trust.development import dev_private_key
from cepbus.trust.ids import DEVELOPMENT_IDS
from cepbus_app.demo.partner import ExamplePartner, plan_steps
from services.router.referrals.handlers import update_fingerprint

DEMO_REFUSAL_RATE = 0.15
DEMO_PARTNER_SEED = 4
#: Local partners the demo's operators refer people to directly, with how many days ago (a backlog:
#: the partner answers only now, so the steps already overdue in business days are reported).
PARTNER_BACKLOG: tuple[tuple[str, str, int], ...] = (
    ("cep-r11", "transitions-pro-r11", 1),
    ("cep-r84", "transitions-pro-r84", 2),
    ("cep-r75", "transitions-pro-r75", 4),
    ("cep-r32", "transitions-pro-r32", 6),
    ("cep-r11", "opco-atlas", 3),
    ("cep-r44", "opco-2i", 8),
    ("cep-r93", "opco-sante", 12),
    ("cep-r52", "spro-r52", 5),
    ("cep-r53", "spro-r53", 10),
    ("cep-r84", "exemple-formation-r84", 15),
    ("cep-r04", "exemple-medico-social-r04", 25),
    ("cep-r11", "exemple-formation-r11", 0),
)


def planned_updates(referrals: Sequence[ReferralRequested]) -> list[ReferralStatusChanged]:
    """Every update the demo's example partners send, as they build them (unsigned: the signature and
    the sending time do not change the update's id nor its verdict's)."""
    updates = []
    for r in referrals:
        for step in plan_steps(r.referral_id, 0.0, DEMO_REFUSAL_RATE, DEMO_PARTNER_SEED):
            event_id = derived_event_id(r.referral_id, f"status:{r.recipient_org_id}:{step.status.value}")
            updates.append(
                ReferralStatusChanged(
                    envelope=new_envelope(
                        ReferralStatusChanged,
                        producer_org_id=r.recipient_org_id,
                        causation=r.envelope,
                        event_id=event_id,
                    ),
                    referral_id=r.referral_id,
                    status=step.status,
                    actor_org_id=r.recipient_org_id,
                    reason_code=step.reason_code,
                    signer_org_id=r.recipient_org_id,
                )
            )
    return updates


def verdict_id(update: ReferralStatusChanged) -> str:
    """The id of the router's verdict on `update` (the router runs on the development id key here)."""
    return str(DEVELOPMENT_IDS.derive(f"{update.event_id}/{update_fingerprint(update)}", "referral-verdict"))


def expected_verdict_ids(
    referrals: Sequence[ReferralRequested], forged: Sequence[ReferralStatusChanged] = ()
) -> list[str]:
    """The ledger holds the router's verdicts on the updates, not the updates: one per planned update
    (applied) and one per forged update (refused)."""
    return [verdict_id(update) for update in [*planned_updates(referrals), *forged]]


def partner_referrals(seed: int, now: datetime | None = None) -> list[ReferralRequested]:
    """Referrals from regional operators to local partners (`PARTNER_BACKLOG`, dated in the past),
    then a ping-pong: a person referred to Transitions Pro and referred back by it. Ids and people are
    those of one run (the seed and `now`): a run never reuses the ids of another with other content."""
    now = now or datetime.now(UTC)
    run = f"{seed}-{int(now.timestamp() * 1000)}"
    directory = load_directory()

    def referral(n: int, requester: str, recipient: str, days_ago: int, person: str) -> ReferralRequested:
        region = directory.get(requester).region_code or "11"
        return ReferralRequested(
            envelope=new_envelope(
                ReferralRequested,
                producer_org_id=requester,
                person_pseudonym=person,
                event_id=derived_event_id(f"demo-partner-referral/{run}", f"{n}"),
                correlation_id=f"demo-partner-referral-{run}-{person}",
                occurred_at=now - timedelta(days=days_ago),
            ),
            referral_id=str(derived_event_id(f"demo-partner-referral/{run}", f"{n}/referral")),
            requester_org_id=requester,
            recipient_org_id=recipient,
            recipient_kind=directory.get(recipient).kind,
            region_code=region,
            reason="orientation vers un partenaire local du CEP",
            consent_to_share=False,
        )

    out = [
        referral(n, requester, recipient, days, f"p-demo-{run}-partner-{n}")
        for n, (requester, recipient, days) in enumerate(PARTNER_BACKLOG)
    ]
    bouncing = f"p-demo-{run}-ping-pong"
    out.append(referral(100, "cep-r24", "transitions-pro-r24", 3, bouncing))
    out.append(referral(101, "transitions-pro-r24", "cep-r24", 0, bouncing))  # sent back: ping-pong alert
    return out


def forged_updates(referrals: Sequence[ReferralRequested]) -> list[ReferralStatusChanged]:
    """Three updates the router must refuse: unsigned, signed with another organisation's key, and
    signed by an organisation posing as the recipient. Their ids follow their target referral's."""
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
    """Example partners for the given organisations (the run's recipients), in one thread of the demo
    process: one consumer over their inboxes, fewer partitions to fetch than the whole directory."""

    broker: BrokerSettings
    org_ids: Sequence[str] = ()
    stop: threading.Event = field(default_factory=threading.Event)
    partner: ExamplePartner | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        org_ids = sorted(set(self.org_ids)) or load_directory().org_ids()
        self.partner = ExamplePartner(
            org_ids,
            delay_s=0.0,
            refusal_rate=DEMO_REFUSAL_RATE,
            seed=DEMO_PARTNER_SEED,
            settings=self.broker,
            # a fresh group each run, under the first organisation's own prefix (its KafkaUser's ACL);
            # one consumer for many organisations is the demo's shortcut: on a cluster with ACLs each
            # partner reads its inbox as itself
            group_id=f"cepbus-partner-{org_ids[0]}-demo-{uuid.uuid4().hex[:8]}",
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
    forged_count: int = 0,
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
            router_metrics = scrape_router()
            refused = router_metrics.get("cepbus_referral_updates_rejected_total", 0.0)
            if (closed >= len(referral_ids) and refused >= forged_count) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        breaches = store.count_breaches(referral_ids)
    finally:
        store.close()
    return {
        "referrals_completed": states.get("completed", 0),
        "referrals_declined": states.get("declined", 0),
        "referrals_open": len(referral_ids) - closed,
        "referral_states": dict(sorted(states.items())),
        "deadline_breaches": breaches,
        "rejected_updates": int(router_metrics.get("cepbus_referral_updates_rejected_total", 0.0)),
        "regulation_alerts": int(router_metrics.get("cepbus_referral_alerts_total", 0.0)),
        "appointments_held": int(router_metrics.get("cepbus_referral_appointment_delay_seconds_count", 0.0)),
    }
