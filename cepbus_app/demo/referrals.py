"""The referral part of `cep-bus demo`: example partners answering in a thread, the status updates
they will send (so the ledger check covers them), a few forged updates the router must refuse at its
edge (each dead-lettered with the reason, before any handler: no verdict, no one told), and the figures
of the run."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaProducer
from kafka.producer.future import RecordMetadata

from cepbus.contract import codec
from cepbus.contract.headers import CORRELATION_HEADER, EVENT_TYPE_HEADER
from cepbus.contract.models import (
    CEP_OPERATOR_KINDS,
    ReferralRequested,
    ReferralStatusChanged,
    derived_event_id,
    new_envelope,
)
from cepbus.contract.statements import StatementSignature, StatementSigner
from cepbus.contract.topics import REFERRAL_STATUS
from cepbus.reference.directory import load_directory
from cepbus.runtime.client_config import kafka_python_security
from cepbus.runtime.settings import BrokerSettings
from cepbus.runtime.traffic import principal_of_org
from cepbus.sdk.contact import attach_contact
from cepbus.sdk.publisher import Publisher, development_signer
from cepbus.trust.development import dev_private_key
from cepbus.trust.ids import DEVELOPMENT_IDS
from cepbus_app.demo.partner import ExamplePartner, plan_steps
from cepbus_app.vectors.sealed import example_contact
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
    """Every update the demo's example partners send, as `PartnerClient.update` builds them (their
    statement signature, made when sent, and the sending time change neither the update's id nor its
    verdict's)."""
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
                )
            )
    return updates


def verdict_id(update: ReferralStatusChanged) -> str:
    """The id of the router's verdict on `update` (the router runs on the development id key here)."""
    return str(DEVELOPMENT_IDS.derive(f"{update.event_id}/{update_fingerprint(update)}", "referral-verdict"))


def expected_verdict_ids(referrals: Sequence[ReferralRequested]) -> list[str]:
    """The ledger holds the router's verdicts on the updates, not the updates: one per planned update
    (applied or refused by the lifecycle). A forged update gets none: the router's edge dead-letters it
    before its lifecycle sees it (`forged_updates`)."""
    return [verdict_id(update) for update in planned_updates(referrals)]


#: Referrals the demo leaves unanswered, to show the follow-up (reminders, then expiry) in its summary.
UNANSWERED_COUNT = 3


def unanswered_referrals(
    seed: int, answered_by: Sequence[str], now: datetime | None = None
) -> list[ReferralRequested]:
    """Referrals from the regional CEP operator of region 84 to a local partner of that region the demo's
    example partners do not serve, each with the person's contact sealed to it (consent given): nobody
    answers them, so the router reminds the partner and then expires them (`DEMO_FOLLOW_UP`)."""
    now = now or datetime.now(UTC)
    run = f"{seed}-{int(now.timestamp() * 1000)}"
    directory = load_directory()
    silent = next(
        e.org_id
        for e in directory.entries()
        if e.region_code == "84" and e.kind not in CEP_OPERATOR_KINDS and e.org_id not in set(answered_by)
    )
    out = []
    for n in range(UNANSWERED_COUNT):
        referral = ReferralRequested(
            envelope=new_envelope(
                ReferralRequested,
                producer_org_id="cep-r84",
                person_pseudonym=f"p-demo-{run}-unanswered-{n}",
                event_id=derived_event_id(f"demo-unanswered/{run}", f"{n}"),
                correlation_id=f"demo-unanswered-{run}-{n}",
                occurred_at=now,
            ),
            referral_id=str(derived_event_id(f"demo-unanswered/{run}", f"{n}/referral")),
            requester_org_id="cep-r84",
            recipient_org_id=silent,
            recipient_kind=directory.get(silent).kind,
            region_code="84",
            reason="orientation vers un partenaire local du CEP",
            consent_to_share=True,
        )
        out.append(attach_contact(referral, example_contact(), directory, at=now))
    return out


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


#: Whose genuine key the demo's forgeries are signed with (another organisation than the recipient).
FORGER = "opco-sante"
FORGER_ELSE = "opco-atlas"  # when the recipient is the forger itself


@dataclass(frozen=True)
class ForgedUpdate:
    """A status update the router must refuse at its edge, with the reason its dead letter must give,
    and the statement signature it is sent with (None: sent with none)."""

    update: ReferralStatusChanged
    reason: str
    signature: StatementSignature | None


def forged_updates(referrals: Sequence[ReferralRequested]) -> list[ForgedUpdate]:
    """Three updates in the name of the first referral's recipient (its producer and actor) that it
    never signed, each of which the router's edge must dead-letter (docs/referrals.md): signed with
    another organisation's genuine key (`misattributed`: the signer is not the producer), signed by
    another key under the recipient's own directory key id (`bad_signature`), and with no signature at
    all (`unsigned`). Their ids follow their target referral's."""
    if not referrals:
        return []
    target = referrals[0]
    recipient = target.recipient_org_id
    forger = FORGER if recipient != FORGER else FORGER_ELSE

    def base(purpose: str) -> ReferralStatusChanged:
        return ReferralStatusChanged(
            envelope=new_envelope(
                ReferralStatusChanged,
                producer_org_id=recipient,
                causation=target.envelope,
                event_id=derived_event_id(target.referral_id, f"demo-forged:{purpose}"),
            ),
            referral_id=target.referral_id,
            status="completed",
            actor_org_id=recipient,
            reason_code="accompaniment_engaged",
        )

    def signed(update: ReferralStatusChanged, signer: StatementSigner) -> StatementSignature:
        [signature] = signer.sign([codec.encode(update)])
        return signature

    misattributed, wrong_key, unsigned = base("misattributed"), base("wrong-key"), base("unsigned")
    recipient_key = load_directory().current_key(recipient).key_id
    return [
        ForgedUpdate(misattributed, "misattributed", signed(misattributed, development_signer(forger))),
        ForgedUpdate(
            wrong_key,
            "bad_signature",
            signed(wrong_key, StatementSigner(recipient, recipient_key, dev_private_key(forger))),
        ),
        ForgedUpdate(unsigned, "unsigned", None),
    ]


def _send_unsigned(publisher: Publisher, update: ReferralStatusChanged) -> RecordMetadata:
    """`update` on the status topic with no `cepbus-signature` header (what the Publisher never sends),
    framed as the publisher frames, as the recipient's KafkaUser would send it."""
    topic = REFERRAL_STATUS.name
    settings = publisher.settings
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_list,
        client_id="cepbus-demo-forger",
        acks="all",
        request_timeout_ms=int(settings.request_timeout_s * 1000),
        **kafka_python_security(settings),
    )
    try:
        publisher.requests.record(principal_of_org(update.envelope.producer_org_id), "Write", "topic", topic)
        future = producer.send(
            topic,
            key=update.partition_key(),
            value=publisher.wire.frame(codec.encode(update), topic),
            headers=[
                (CORRELATION_HEADER, update.envelope.correlation_id.encode()),
                (EVENT_TYPE_HEADER, update.avro_name.encode()),
            ],
        )
        producer.flush()
        metadata: RecordMetadata = future.get(timeout=settings.request_timeout_s)
        return metadata
    finally:
        producer.close()


def router_dead_letter_id(sent: RecordMetadata) -> str:
    """The id of the dead letter the router makes of the message at this position
    (`EventProcessor.dead_letter`: derived from the position and the service)."""
    return str(derived_event_id(f"{sent.topic}/{sent.partition}/{sent.offset}", "dead-letter:router"))


def send_forged(publisher: Publisher, forged: Sequence[ForgedUpdate]) -> dict[str, str]:
    """Send the forgeries, each with its own signature (or none); returns the id of the dead letter the
    router must make of each -> the reason it must give."""
    expected: dict[str, str] = {}
    for forgery in forged:
        if forgery.signature is None:
            sent = _send_unsigned(publisher, forgery.update)
        else:  # sent as is: the Publisher signs nothing itself when given a signature
            sent = publisher.publish(forgery.update, signed=forgery.signature)
        expected[router_dead_letter_id(sent)] = forgery.reason
    return expected


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
    forged_letters: Mapping[str, str] | None = None,
    deadletters_url: str | None = None,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Where this run's referrals ended and how the router refused the forgeries, once the router has
    applied every update and the dead-letter archive holds the router's dead letter of every forgery
    (`forged_letters`: its id -> the reason it must give; the archive at `deadletters_url`), or the
    timeout; the router's counters are read after that wait."""
    from services.deadletters.store import DeadLetterStore
    from services.router.referrals.machine import TERMINAL
    from services.router.referrals.store import ReferralStore

    forged_letters = dict(forged_letters or {})
    store = ReferralStore(database_url)
    letters = DeadLetterStore(deadletters_url) if forged_letters and deadletters_url else None
    found: dict[str, str] = {}  # dead letter id -> its reason code
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            states = store.count_by_state(referral_ids)
            closed = sum(n for state, n in states.items() if state in {s.value for s in TERMINAL})
            if letters is not None:
                for letter_id in set(forged_letters) - set(found):
                    letter = letters.get(letter_id)
                    if letter is not None and letter.service == "router":
                        found[letter_id] = letter.reason_code
            router_metrics = scrape_router()
            all_refused = len(found) >= len(forged_letters)
            if (closed >= len(referral_ids) and all_refused) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        breaches = store.count_breaches(referral_ids)
    finally:
        store.close()
        if letters is not None:
            letters.close()
    as_expected = sum(1 for letter_id, reason in found.items() if forged_letters[letter_id] == reason)
    rejected_by_lifecycle = int(router_metrics.get("cepbus_referral_updates_rejected_total", 0.0))
    return {
        "referrals_completed": states.get("completed", 0),
        "referrals_declined": states.get("declined", 0),
        "referrals_open": len(referral_ids) - closed,
        "referral_states": dict(sorted(states.items())),
        "deadline_breaches": breaches,
        # refused by the router: by its lifecycle (its counter), and at its edge this run's forgeries
        "rejected_updates": rejected_by_lifecycle + len(found),
        "forged_updates_refused": len(found),
        "forged_refusals": dict(sorted(Counter(found.values()).items())),
        "forged_refusals_expected": dict(sorted(Counter(forged_letters.values()).items())),
        "forged_refused_as_expected": as_expected == len(forged_letters),
        "forged_not_refused_as_expected": len(forged_letters) - as_expected,
        "regulation_alerts": int(router_metrics.get("cepbus_referral_alerts_total", 0.0)),
        "appointments_held": int(router_metrics.get("cepbus_referral_appointment_delay_seconds_count", 0.0)),
    }
