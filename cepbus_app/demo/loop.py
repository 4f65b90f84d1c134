"""`cep-bus demo`: the whole regulation loop once, on the embedded default.

Starts what is not running (broker, services), publishes N simulated intakes and the choices that
follow their notices, then (once the router knows every notice and choice) the levels of service,
waits until the ledger holds every expected entry (decisions, notices, referrals, breaches...),
verifies the ledger, prints a summary and stops what it started.
"""

from __future__ import annotations

import copy
import os
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from cepbus.contract.models import (
    ChoiceRecorded,
    Event,
    IntakeDecided,
    IntakeRegistered,
    NoticeIssued,
    NoticeRequested,
    ReferralRequested,
    RegulationBreach,
    ServiceLevelStarted,
)
from cepbus.progress import progress
from cepbus.reference import load_reference
from cepbus.runtime.admin import bus_topics, ensure_topics
from cepbus.runtime.messages import Rejected
from cepbus.runtime.settings import BrokerSettings
from cepbus.sdk.publisher import Publisher
from cepbus.trust.settings import TrustSettings
from cepbus_app.broker import EmbeddedBroker, EmbeddedBrokerSettings
from cepbus_app.demo.mail import DemoMailbox
from cepbus_app.demo.referrals import (
    PartnersThread,
    expected_verdict_ids,
    forged_updates,
    partner_referrals,
    referral_figures,
    send_forged,
    unanswered_referrals,
)
from cepbus_app.demo.simulator import Simulator
from cepbus_app.instrumented import requests_from
from cepbus_app.supervisor import SERVICES, SupervisionThread, Supervisor, metrics_port, service_running
from services.deadletters.settings import DeadLetterSettings
from services.ledger.settings import LedgerSettings
from services.ledger.store import LedgerStore, SqlLedgerStore
from services.notifier.handlers import NotifierHandlers
from services.router.handlers import RouterHandlers
from services.router.settings import ReferralSettings, RouterSettings
from services.router.store import RouterStore


@dataclass
class Expected:
    """The events the ledger must hold once the loop has run, by type."""

    ids: dict[str, str] = field(default_factory=dict)  # event id -> short type name
    events: list[Event] = field(default_factory=list)
    informed_of: Counter[str] = field(default_factory=Counter)  # operator kind -> notices naming it
    decisions: Counter[str] = field(default_factory=Counter)  # decision status -> intakes
    breaches: Counter[str] = field(default_factory=Counter)  # breach kind -> level-2 starts
    levels: Counter[str] = field(default_factory=Counter)  # service level -> starts
    referrals_with_profile: int = 0

    def add(self, event: Event) -> None:
        self.ids[str(event.event_id)] = type(event).__name__
        self.events.append(event)
        if isinstance(event, NoticeRequested):
            self.informed_of.update(kind.value for kind in event.inform)
        elif isinstance(event, IntakeDecided):
            self.decisions[event.status.value] += 1
        elif isinstance(event, RegulationBreach):
            self.breaches[event.breach.value] += 1
        elif isinstance(event, ServiceLevelStarted):
            self.levels[event.level.value] += 1
        elif isinstance(event, ReferralRequested) and event.shared_profile is not None:
            self.referrals_with_profile += 1

    def by_type(self) -> Counter[str]:
        return Counter(self.ids.values())


@dataclass
class DemoPlan:
    """What the demo publishes, in two phases, and what the ledger must then hold.

    Phase 1: intakes and choices. Phase 2, once the router knows every notice and choice: the levels
    of service, whose level-2 starts the router checks against that state."""

    intakes: list[IntakeRegistered]
    choices: list[ChoiceRecorded]
    service_levels: list[ServiceLevelStarted]
    expected: Expected
    phase_1: Expected  # what the ledger must hold after phase 1
    router_must_know: set[str]  # notice and choice event ids the router must hold before phase 2


def plan_demo(intake_count: int, seed: int) -> DemoPlan:
    """Simulated input and, from the same pure domain code the services run, what must follow."""
    reference = load_reference()
    simulator = Simulator(reference, seed=seed)
    router, notifier = RouterHandlers(reference), NotifierHandlers(reference)
    intakes = list(simulator.intakes(intake_count))
    choices: list[ChoiceRecorded] = []
    expected = Expected()
    pending_levels: list[tuple[IntakeRegistered, bool, ChoiceRecorded | None]] = []
    must_know: set[str] = set()
    for intake in intakes:
        expected.add(intake)
        try:
            outputs = router.on_intake(intake)
        except Rejected as refused:  # recorded as decided "rejected", and dead-lettered
            for out in refused.also:
                expected.add(out.event)
            continue
        chosen: ChoiceRecorded | None = None
        notice_due = False
        for out in outputs:
            expected.add(out.event)
            if not isinstance(out.event, NoticeRequested):
                continue
            request, notice_due = out.event, True
            for notice in notifier.on_notice_requested(request):
                expected.add(notice.event)
                must_know.add(str(notice.event.event_id))
                assert isinstance(notice.event, NoticeIssued)
                router.on_notice_issued(notice.event)
            if simulator.records_no_choice():
                continue
            chosen = simulator.choice(intake, request)
            choices.append(chosen)
            expected.add(chosen)
            must_know.add(str(chosen.event_id))
            for referral in router.on_choice(chosen):
                expected.add(referral.event)
        pending_levels.append((intake, notice_due, chosen))
    phase_1 = copy.deepcopy(expected)
    levels: list[ServiceLevelStarted] = []
    for intake, notice_due, chosen in pending_levels:
        for started in simulator.service_levels(intake, notice_due, chosen):
            levels.append(started)
            expected.add(started)
            for out in router.on_service_level(started):
                expected.add(out.event)
    return DemoPlan(intakes, choices, levels, expected, phase_1, must_know)


def plan(intake_count: int, seed: int) -> tuple[list[IntakeRegistered], list[ChoiceRecorded], Expected]:
    """Phase 1 only (intakes and choices) and what the ledger must hold after it."""
    full = plan_demo(intake_count, seed)
    return full.intakes, full.choices, full.phase_1


def wait_until_known(
    known: Callable[[set[str]], set[str]],
    event_ids: Iterable[str],
    timeout_s: float,
    progress: Callable[[int], None] | None = None,
) -> set[str]:
    """Poll `known` (a store's `known_event_ids`) until it holds every id; return the ids still missing.
    `progress(ids known)`, if given, is called after every poll."""
    missing = set(event_ids)
    total = len(missing)
    deadline = time.monotonic() + timeout_s
    while missing:
        missing -= known(missing)
        if progress is not None:
            progress(total - len(missing))
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return missing


def wait_for_router(store: RouterStore, event_ids: set[str], timeout_s: float) -> set[str]:
    """Until the router's store holds these notices and choices; return those still missing."""
    return wait_until_known(store.known_event_ids, event_ids, timeout_s)


def wait_for_ledger(store: LedgerStore, expected: Expected, timeout_s: float) -> set[str]:
    """Until the ledger holds every expected event id; return the ids still missing. On a terminal,
    a bar on stderr shows "ledger entries: n / expected" (the summary stays alone on stdout)."""
    with progress("ledger entries", len(expected.ids)) as update:
        return wait_until_known(store.known_event_ids, expected.ids, timeout_s, update)


#: How often a ledger the demo starts signs a checkpoint (the service's default is 10 s): the demo waits
#: for one over every entry, so that `cep-bus audit report` on its ledger names a checkpoint of the
#: whole tree. A CEPBUS_LEDGER_CHECKPOINT_EVERY_S of the caller's own wins.
DEMO_CHECKPOINT_EVERY_S = "2"
CHECKPOINT_ENV = "CEPBUS_LEDGER_CHECKPOINT_EVERY_S"


def wait_for_checkpoint(store: LedgerStore, timeout_s: float) -> tuple[int, int]:
    """Until the ledger's latest signed checkpoint covers every entry it holds, or `timeout_s`; returns
    (entries the checkpoint covers, entries in the tree)."""
    deadline = time.monotonic() + timeout_s
    while True:
        size, latest = store.size(), store.latest_checkpoint()
        signed = latest.checkpoint.size if latest is not None else 0
        if signed >= size or time.monotonic() >= deadline:
            return signed, size
        time.sleep(0.2)


def scrape(port: int) -> dict[str, float]:
    """Sum of each sample name on a service's /metrics (labels summed)."""
    totals: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return totals
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def emails_of(mailbox: DemoMailbox, started: bool, referrals: int, deadline: float) -> dict[str, int] | None:
    """The emails the demo's mailer sent, by kind, once one `new_referral` per referral arrived (each
    recipient has a development address) or at the deadline (at least 10 s more); None when the demo
    did not start the mailer or has no SMTP server."""
    if not (started and mailbox.running):
        return None
    return mailbox.wait_for("new_referral", referrals, max(10.0, deadline - time.monotonic()))


#: The referral follow-up the demo runs (docs/referrals.md, "Reminders and expiry"): a month's reminders
#: and expiry in seconds, so that the referrals it leaves unanswered are reminded and expire within the
#: run (its other referrals are answered at once); a caller's own settings win.
DEMO_FOLLOW_UP = {
    "CEPBUS_REFERRALS_REMIND_EVERY": "PT4S",
    "CEPBUS_REFERRALS_EXPIRE_AFTER": "PT12S",
    "CEPBUS_REFERRALS_SWEEP_INTERVAL_S": "1",
}


def wait_for_expiries(want: int, timeout_s: float) -> int:
    """Until the router expired `want` referrals (its counter) or `timeout_s`; the count."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = int(scrape(metrics_port("router")).get("cepbus_referrals_expired_total", 0.0))
        if done >= want or time.monotonic() >= deadline:
            return done
        time.sleep(0.5)


def wait_for_quiet_ledger(store: LedgerStore, quiet_s: float, timeout_s: float) -> None:
    """Until the ledger's size has not changed for `quiet_s`, or `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    size, since = store.size(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.2)
        now_size = store.size()
        if now_size != size:
            size, since = now_size, time.monotonic()


def run_demo(intake_count: int, seed: int, timeout_s: float = 120.0) -> dict[str, Any]:
    started_at = time.monotonic()
    broker_settings = BrokerSettings()
    embedded = EmbeddedBroker(EmbeddedBrokerSettings())
    checkpoints = {} if CHECKPOINT_ENV in os.environ else {CHECKPOINT_ENV: DEMO_CHECKPOINT_EVERY_S}
    checkpoints |= {name: value for name, value in DEMO_FOLLOW_UP.items() if name not in os.environ}
    mailbox = DemoMailbox()  # the SMTP server of a mailer the demo starts: it counts the emails by kind
    supervisor = Supervisor(env={**checkpoints, **(mailbox.start() if not service_running("mailer") else {})})
    partners = PartnersThread(broker_settings)
    started: list[str] = []
    watcher: SupervisionThread | None = None
    try:
        if not embedded.already_running():
            embedded.start()
            started.append("broker")
        ensure_topics(broker_settings, bus_topics())
        for service in SERVICES:
            if not service_running(service):
                supervisor.start(service)
                started.append(service)
        for service in supervisor.processes:
            supervisor.wait_metrics(service, metrics_port(service))
        watcher = supervisor.supervise()  # a service that dies mid-demo is restarted, and reported

        demo_plan = plan_demo(intake_count, seed)
        intakes, choices, expected = demo_plan.intakes, demo_plan.choices, demo_plan.expected
        direct = partner_referrals(seed)  # closed loop (#4): to local partners, backdated, one ping-pong
        for referral in direct:
            expected.add(referral)
        referrals = [e for e in expected.events if isinstance(e, ReferralRequested)]
        forged = forged_updates(referrals)
        partners.org_ids = [r.recipient_org_id for r in referrals]
        unanswered = unanswered_referrals(seed, partners.org_ids)  # reminded, then expired
        # the router's verdicts on the partners' answers: all in the ledger by the end (the forgeries get
        # none: its edge dead-letters them, which `referral_figures` checks, each with its reason)
        expected.ids.update(dict.fromkeys(expected_verdict_ids(referrals), "ReferralUpdateVerdict"))
        partners.start()
        deadline = time.monotonic() + timeout_s
        store = SqlLedgerStore(LedgerSettings().database_url)
        router_store = RouterStore(RouterSettings().database_url)
        try:
            with Publisher(
                broker_settings, client_id="cepbus-demo", requests=requests_from(os.environ)
            ) as publisher:
                publisher.publish_many(intakes)
                publisher.publish_many(choices)
                publisher.publish_many(direct)
                publisher.publish_many(unanswered)
                forged_letters = send_forged(publisher, forged)  # dead letter id -> reason it must give
                published_at = time.monotonic()
                missing = wait_for_ledger(store, demo_plan.phase_1, deadline - time.monotonic())
                phase_1_s = time.monotonic() - published_at
                missing |= wait_for_router(
                    router_store, demo_plan.router_must_know, deadline - time.monotonic()
                )
                router_settled_s = time.monotonic() - published_at
                if not missing:
                    publisher.publish_many(demo_plan.service_levels)
                    missing = wait_for_ledger(store, expected, deadline - time.monotonic())
                else:
                    missing |= set(expected.ids) - set(demo_plan.phase_1.ids)
            loop_s = time.monotonic() - published_at
            # the unanswered referrals' reminders and expiries reach the ledger before the checkpoint the
            # demo waits for: once expired, a referral gives no more events
            expired_seen = wait_for_expiries(
                len(unanswered), max(0.0, min(30.0, deadline - time.monotonic()))
            )
            wait_for_quiet_ledger(store, 2.0, max(0.0, min(15.0, deadline - time.monotonic())))
            signed, tree_size = (0, store.size()) if missing else wait_for_checkpoint(store, 30.0)
            verification = store.verify()
            ledger_entries = store.count()
        finally:
            store.close()
            router_store.close()
        figures = referral_figures(
            ReferralSettings().database_url,
            [r.referral_id for r in referrals],
            lambda: scrape(metrics_port("router")),
            forged_letters=forged_letters,
            deadletters_url=DeadLetterSettings().database_url,
        )
        # a forgery the router did not refuse at its edge, with its reason, is as missing as an entry
        forgeries_missing = int(figures["forged_not_refused_as_expected"])
        dead_letters = sum(scrape(metrics_port(s)).get("cepbus_dead_letters_total", 0.0) for s in SERVICES)
        emails = emails_of(mailbox, "mailer" in started, len(referrals) + len(unanswered), deadline)
        if emails is not None:  # the expiries' emails, to both parties of each
            emails = mailbox.wait_for("expired", 2 * len(unanswered), max(5.0, deadline - time.monotonic()))
        router_counters = scrape(metrics_port("router"))
        by_type = expected.by_type()
        held = Counter(kind for event_id, kind in expected.ids.items() if event_id not in missing)
        choice_counts = Counter(choice.choice.value for choice in choices)
        summary: dict[str, Any] = {
            "intakes_published": len(intakes),
            "choices_published": len(choices),
            "notices_expected": by_type["NoticeIssued"],
            "notices_issued": held["NoticeIssued"],
            "notices_by_operator_kind": dict(sorted(expected.informed_of.items())),
            "choices": dict(sorted(choice_counts.items())),
            "referrals": held["ReferralRequested"],
            "referrals_with_profile": expected.referrals_with_profile,
            "decisions": dict(sorted(expected.decisions.items())),
            "decisions_recorded": held["IntakeDecided"],
            "demission_reconversion": sum(1 for i in intakes if i.purpose is not None),
            "service_levels": dict(sorted(expected.levels.items())),
            "breaches": held["RegulationBreach"],
            "breaches_by_kind": dict(sorted(expected.breaches.items())),
            "ledger_entries_expected": len(expected.ids),
            "ledger_entries_from_this_run": len(expected.ids) - len(missing),
            "ledger_entries": ledger_entries,
            "ledger_verified": verification.ok,
            "ledger_checkpoint_covers": signed,
            "ledger_tree_size": tree_size,
            "ledger_verify_reason": verification.reason,
            "dead_letters": int(dead_letters),
            "status_verdicts_expected": by_type["ReferralUpdateVerdict"],
            "status_verdicts_in_ledger": held["ReferralUpdateVerdict"],
            "partner_referrals": len(direct),
            "forged_updates_sent": len(forged),
            "emails_by_kind": emails,  # None: the mailer was already running, or no aiosmtpd
            "emails_new_referral_expected": len(referrals) + len(unanswered),
            # the follow-up of unanswered referrals (the router's counters, this run and before)
            "referral_reminders": int(router_counters.get("cepbus_referral_reminders_total", 0.0)),
            "referrals_expired": int(router_counters.get("cepbus_referrals_expired_total", 0.0)),
            "referrals_left_unanswered": len(unanswered),
            "referrals_expired_seen": expired_seen,
            **figures,
            "mode": TrustSettings().env.value,
            "loop_completed": not missing and not forgeries_missing,
            "missing_entries": len(missing) + forgeries_missing,
            "started": started,
            "services_died": supervisor.deaths(),
            "services_restarted": supervisor.restarts(),
            "supervisor_gave_up": None if watcher.gave_up is None else str(watcher.gave_up),
            "publish_to_ledger_s": round(loop_s, 3),
            "phase_1_in_ledger_s": round(phase_1_s, 3),
            "router_state_settled_s": round(router_settled_s, 3),
            "elapsed_s": round(time.monotonic() - started_at, 3),
        }
        return summary
    finally:
        if watcher is not None:
            watcher.stop()
        partners.close()
        supervisor.stop_all()
        mailbox.stop()
        if "broker" in started:
            embedded.stop()
