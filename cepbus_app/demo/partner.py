"""A runnable example partner (`cep-bus partner --org ID`): for every referral in its inbox it
acknowledges receipt, then accepts (or declines, at the refusal rate), books, holds and completes the
first appointment, `delay` seconds apart. What it does to a referral depends only on the referral id
and the seed, so the demo can predict every update it will send (and their event ids).

Keys: an organisation's own PEM key (`key_file`), else the INSECURE development key derived from its
id (`cepbus.contract.signatures.dev_private_key`), which the packaged directory's public keys match.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.contract.models import (
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateRejected,
)
from cepbus.runtime.logs import get_logger
from cepbus.runtime.settings import BrokerSettings
from cepbus.sdk.partner import BadMessage, PartnerClient, Subscriber
from cepbus.sdk.publisher import Publisher
from cepbus.trust.development import dev_private_key
from cepbus.trust.keys import load_private_key
from cepbus_app.instrumented import requests_from

log = get_logger()
S = ReferralStatus

DECLINE_REASONS = ("session_full", "not_eligible", "person_unreachable")


@dataclass(frozen=True)
class Step:
    after_s: float
    status: ReferralStatus
    reason_code: str | None = None


def plan_steps(referral_id: str, delay_s: float, refusal_rate: float, seed: int) -> list[Step]:
    """The updates the example partner sends for one referral (deterministic)."""
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}/{referral_id}".encode()).digest()[:8], "big"))
    steps = [Step(0.0, S.RECEIVED)]
    if rng.random() < refusal_rate:
        return [*steps, Step(delay_s, S.DECLINED, rng.choice(DECLINE_REASONS))]
    return [
        *steps,
        Step(delay_s, S.ACCEPTED),
        Step(2 * delay_s, S.APPOINTMENT_BOOKED),
        Step(3 * delay_s, S.FIRST_APPOINTMENT_HELD),
        Step(4 * delay_s, S.COMPLETED, "accompaniment_engaged"),
    ]


@dataclass
class ExamplePartner:
    org_ids: Sequence[str]
    delay_s: float = 0.0
    refusal_rate: float = 0.1
    seed: int = 0
    key_for: Callable[[str], Ed25519PrivateKey] = dev_private_key
    settings: BrokerSettings = field(default_factory=BrokerSettings)
    group_id: str | None = None
    stats: Counter[str] = field(default_factory=Counter)

    def updates_for(
        self, referral: ReferralRequested, client: PartnerClient
    ) -> list[tuple[float, ReferralStatusChanged]]:
        return [
            (step.after_s, client.update(referral, step.status, reason_code=step.reason_code))
            for step in plan_steps(referral.referral_id, self.delay_s, self.refusal_rate, self.seed)
        ]

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set."""
        requests = requests_from(os.environ)  # the ACL test's record, when the environment asks for one
        publisher = Publisher(self.settings, client_id="cepbus-example-partner", requests=requests)
        clients = {org: PartnerClient(org, self.key_for(org), publisher=publisher) for org in self.org_ids}
        # (due, order, update, the trace of the referral it answers)
        pending: list[tuple[float, int, ReferralStatusChanged, str | None]] = []
        counter = 0
        # what the inbox hands over is its author's word (the Subscriber verifies each message); what is
        # not is never acted on, only logged by the Subscriber and counted here
        with Subscriber(
            self.org_ids,
            self.settings,
            group_id=self.group_id,
            requests=requests,
            on_unverified=lambda unverified: self.stats.update(["unverified"]),
        ) as inbox:
            try:
                while not stop.is_set():
                    for item in inbox.poll(timeout_s=0.05 if pending else 0.2):
                        if isinstance(item, BadMessage):
                            self.stats["bad_messages"] += 1
                            log.warning(
                                "partner_bad_message",
                                topic=item.topic,
                                offset=item.offset,
                                reason=item.reason,
                            )
                        elif isinstance(item.event, ReferralUpdateRejected):
                            self.stats["rejections"] += 1
                            log.warning(
                                "partner_update_rejected",
                                referral_id=item.event.referral_id,
                                reason=item.event.reason_code,
                                detail=item.event.detail,
                            )
                        else:
                            self.stats["referrals"] += 1
                            now = time.monotonic()
                            for after_s, update in self.updates_for(item.event, clients[item.org_id]):
                                counter += 1
                                heapq.heappush(pending, (now + after_s, counter, update, item.traceparent))
                    due: dict[str | None, list[ReferralStatusChanged]] = {}
                    now = time.monotonic()
                    while pending and pending[0][0] <= now:
                        _, _, update, trace = heapq.heappop(pending)
                        due.setdefault(trace, []).append(update)
                    for trace, updates in due.items():  # each answer within its referral's trace
                        publisher.publish_many(updates, traceparent=trace)
                        self.stats.update(f"sent_{u.status.value}" for u in updates)
                    if not pending:
                        inbox.commit()  # every referral read so far is fully answered
            finally:
                publisher.close()


def key_loader(key_file: Path | None) -> Callable[[str], Ed25519PrivateKey]:
    """The organisation's PEM key when given (one organisation), else the development keys."""
    if key_file is None:
        return dev_private_key
    key = load_private_key(key_file)
    return lambda org_id: key
