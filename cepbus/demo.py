"""`cep-bus demo`: the whole regulation loop once, on the embedded default.

Starts what is not running (broker, services), publishes N simulated intakes and the choices that
follow their notices, waits until the ledger holds every expected entry, verifies the ledger,
prints a summary and stops what it started.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from cepbus.admin import ensure_topics
from cepbus.broker import EmbeddedBroker
from cepbus.demo_referrals import (
    PartnersThread,
    expected_status_ids,
    forged_updates,
    partner_referrals,
    referral_figures,
)
from cepbus.models import ChoiceRecorded, Event, IntakeRegistered, NoticeRequested, ReferralRequested
from cepbus.publisher import Publisher
from cepbus.reference import load_reference
from cepbus.service_runner import bus_topics
from cepbus.settings import BrokerSettings, EmbeddedBrokerSettings, LedgerSettings
from cepbus.simulator import Simulator
from cepbus.supervisor import SERVICES, Supervisor, metrics_port, service_running
from services.ledger.store import LedgerStore, open_store
from services.notifier.handlers import NotifierHandlers
from services.router.handlers import RouterHandlers
from services.router.referrals.settings import ReferralSettings


@dataclass
class Expected:
    """The events the ledger must hold once the loop has run, by type."""

    ids: dict[str, str] = field(default_factory=dict)  # event id -> short type name
    events: list[Event] = field(default_factory=list)
    informed_of: Counter[str] = field(default_factory=Counter)  # operator kind -> notices naming it

    def add(self, event: Event) -> None:
        self.ids[str(event.event_id)] = type(event).__name__
        self.events.append(event)
        if isinstance(event, NoticeRequested):
            self.informed_of.update(kind.value for kind in event.inform)

    def by_type(self) -> Counter[str]:
        return Counter(self.ids.values())


def plan(intake_count: int, seed: int) -> tuple[list[IntakeRegistered], list[ChoiceRecorded], Expected]:
    """Simulated input and, from the same pure domain code the services run, what must follow."""
    reference = load_reference()
    simulator = Simulator(reference, seed=seed)
    router, notifier = RouterHandlers(reference), NotifierHandlers(reference)
    intakes = list(simulator.intakes(intake_count))
    choices: list[ChoiceRecorded] = []
    expected = Expected()
    for intake in intakes:
        expected.add(intake)
        for request in (out.event for out in router.on_intake(intake)):
            assert isinstance(request, NoticeRequested)
            expected.add(request)
            for notice in notifier.on_notice_requested(request):
                expected.add(notice.event)
            choice = simulator.choice(intake, request)
            choices.append(choice)
            expected.add(choice)
            for referral in router.on_choice(choice):
                expected.add(referral.event)
    return intakes, choices, expected


def wait_for_ledger(store: LedgerStore, expected: Expected, timeout_s: float) -> set[str]:
    """Poll the ledger until it holds every expected event id; return the ids still missing."""
    missing = set(expected.ids)
    deadline = time.monotonic() + timeout_s
    while missing and time.monotonic() < deadline:
        missing = {event_id for event_id in missing if not store.contains(event_id)}
        if missing:
            time.sleep(0.2)
    return missing


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


def run_demo(intake_count: int, seed: int, timeout_s: float = 120.0) -> dict[str, Any]:
    started_at = time.monotonic()
    broker_settings = BrokerSettings()
    embedded = EmbeddedBroker(EmbeddedBrokerSettings())
    supervisor = Supervisor()
    partners = PartnersThread(broker_settings)
    started: list[str] = []
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

        intakes, choices, expected = plan(intake_count, seed)
        direct = partner_referrals(seed)  # closed loop (#4): to local partners, backdated, one ping-pong
        for referral in direct:
            expected.add(referral)
        referrals = [e for e in expected.events if isinstance(e, ReferralRequested)]
        forged = forged_updates(referrals)
        partners.org_ids = [r.recipient_org_id for r in referrals]
        expected.ids.update(dict.fromkeys(expected_status_ids(referrals), "ReferralStatusChanged"))
        expected.ids.update({str(u.event_id): "ReferralStatusChanged" for u in forged})
        partners.start()
        with Publisher(broker_settings, client_id="cepbus-demo") as publisher:
            publisher.publish_many(intakes)
            publisher.publish_many(choices)
            publisher.publish_many(direct)
            publisher.publish_many(forged)
        published_at = time.monotonic()

        store = open_store(LedgerSettings().database_url)
        try:
            missing = wait_for_ledger(store, expected, timeout_s)
            loop_s = time.monotonic() - published_at
            verification = store.verify()
            ledger_entries = store.count()
        finally:
            store.close()
        figures = referral_figures(
            ReferralSettings().database_url,
            [r.referral_id for r in referrals],
            lambda: scrape(metrics_port("router")),
            forged_count=len(forged),
        )
        dead_letters = sum(scrape(metrics_port(s)).get("cepbus_dead_letters_total", 0.0) for s in SERVICES)
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
            "ledger_entries_expected": len(expected.ids),
            "ledger_entries_from_this_run": len(expected.ids) - len(missing),
            "ledger_entries": ledger_entries,
            "ledger_verified": verification.ok,
            "ledger_verify_reason": verification.reason,
            "dead_letters": int(dead_letters),
            "status_updates_expected": by_type["ReferralStatusChanged"],
            "status_updates_in_ledger": held["ReferralStatusChanged"],
            "partner_referrals": len(direct),
            "forged_updates_sent": len(forged),
            **figures,
            "loop_completed": not missing,
            "missing_entries": len(missing),
            "started": started,
            "publish_to_ledger_s": round(loop_s, 3),
            "elapsed_s": round(time.monotonic() - started_at, 3),
        }
        return summary
    finally:
        partners.close()
        supervisor.stop_all()
        if "broker" in started:
            embedded.stop()
