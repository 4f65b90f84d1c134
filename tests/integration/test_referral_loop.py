"""Closed-loop referrals through the real broker: the router as its own process, an example partner
process answering from its inbox (only what its author signed: forged referrals in its inbox are set
aside, never answered), signed updates applied, forged ones dead-lettered at the router's edge with the
reason and no one told, the read side over HTTP."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from cepbus.contract import codec
from cepbus.contract.headers import SIGNATURE_HEADER
from cepbus.contract.models import (
    Choice,
    ChoiceRecorded,
    IntakeRegistered,
    OrganisationKind,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateRejected,
    derived_event_id,
    new_envelope,
)
from cepbus.contract.statements import StatementSigner
from cepbus.contract.topics import referral_inbox
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.sdk.partner import Delivery, PartnerClient, Subscriber
from cepbus.sdk.publisher import development_signer
from cepbus.trust.development import dev_private_key
from services.router.handlers import RouterHandlers
from tests.support.bus import RunningBus, dead_letters, wait_for_applied_verdicts, wait_for_ids
from tests.support.factories import intake, referral, service_id
from tests.support.processes import stop_process

pytestmark = pytest.mark.integration
PARTNER_ORGS = ("apec-r11", "cap-emploi-r11")


@dataclass(frozen=True)
class PartnerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path  # its JSON log lines

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue  # a line of the interpreter's own, not structlog's
        return lines


@pytest.fixture(scope="module")
def partner_process(bus: RunningBus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerProcess]:
    """`cep-bus partner` for two organisations, as its own process; never declines (refusal rate 0)."""
    log_path = tmp_path_factory.mktemp("partner") / "partner.log"
    args = [
        sys.executable,
        "-m",
        "cepbus_app",
        "partner",
        "--refusal-rate",
        "0",
        "--group-id",  # within the first organisation's group prefix, as its KafkaUser allows
        f"cepbus-partner-{PARTNER_ORGS[0]}-t{uuid.uuid4().hex[:8]}",
    ]
    for org in PARTNER_ORGS:
        args += ["--org", org]
    env = {**os.environ, "CEPBUS_BOOTSTRAP_SERVERS": bus.bootstrap, "CEPBUS_LOG_FORMAT": "json"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield PartnerProcess(process, log_path)
    finally:
        stop_process(process, log_path)


def switch_to_apec(person: str) -> tuple[IntakeRegistered, ChoiceRecorded, ReferralRequested]:
    cadre = intake(person=person, cadre=True, occurred_at=datetime.now(UTC))
    choice = ChoiceRecorded(
        envelope=new_envelope(ChoiceRecorded, producer_org_id=cadre.operator_id, causation=cadre.envelope),
        intake_event_id=str(cadre.event_id),
        operator_id=cadre.operator_id,
        region_code=cadre.region_code,
        choice=Choice.SWITCH,
        chosen_operator_kind=OrganisationKind.APEC,
        consent_to_share=True,
    )
    [routed] = RouterHandlers(load_reference()).on_choice(choice)
    assert isinstance(routed.event, ReferralRequested)
    return cadre, choice, routed.event


def http_json(bus: RunningBus, path: str, as_org: str | None = "apec-r11") -> tuple[int, Any]:
    """GET on the read side, authenticated as `as_org` (the test bus runs in development: its token is
    `dev-<org>`), or not at all."""
    url = f"http://127.0.0.1:{bus.referrals_http_port}{path}"
    headers = {"Authorization": f"Bearer dev-{as_org}"} if as_org else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except urllib.error.URLError:  # the read side starts with the worker: not listening yet
        return 0, None


def wait_status(bus: RunningBus, referral_id: str, want: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    view: Any = None
    while time.monotonic() < deadline:
        code, view = http_json(bus, f"/referrals/{referral_id}")
        if code == 200 and view["referral"]["status"] == want:
            return view  # type: ignore[no-any-return]
        time.sleep(0.25)
    raise AssertionError(f"referral {referral_id} never reached {want}: {view}")


def test_a_partner_process_closes_the_loop(bus: RunningBus, partner_process: PartnerProcess) -> None:
    intake_event, choice, referral = switch_to_apec(f"p-loop-{uuid.uuid4().hex[:8]}")
    with bus.publisher() as publisher:
        publisher.publish(intake_event)
        publisher.publish(choice)
    view = wait_status(bus, referral.referral_id, "completed")
    assert partner_process.process.poll() is None
    history = view["history"]
    assert [h["status"] for h in history] == [
        "received",
        "accepted",
        "appointment_booked",
        "first_appointment_held",
        "completed",
    ]
    assert all(h["signer_org_id"] == "apec-r11" and len(h["signature_hex"]) == 128 for h in history)
    # the ledger keeps the router's verdicts, each with the signed update as it was sent
    assert wait_for_applied_verdicts(bus, {h["event_id"] for h in history}) == set()
    code, opened = http_json(bus, "/organisations/apec-r11/referrals")
    assert code == 200 and referral.referral_id not in {r["referral_id"] for r in opened["open"]}
    assert http_json(bus, "/referrals/no-such-referral")[0] == 404
    # the read side answers only an authenticated party to the referral
    assert http_json(bus, f"/referrals/{referral.referral_id}", as_org=None)[0] == 401
    assert http_json(bus, f"/referrals/{referral.referral_id}", as_org="opco-sante")[0] == 404
    assert http_json(bus, "/organisations/apec-r11/referrals", as_org="opco-sante")[0] == 403


def test_forged_update_is_dead_lettered_and_no_one_is_told(
    bus: RunningBus, partner_process: PartnerProcess
) -> None:
    intake_event, choice, referral = switch_to_apec(f"p-forged-{uuid.uuid4().hex[:8]}")
    with bus.publisher() as publisher:
        publisher.publish(intake_event)
        publisher.publish(choice)
    wait_status(bus, referral.referral_id, "completed")
    # apec-r11's name, another organisation's key: the key id a PartnerClient derives from that key (under
    # apec-r11) is no key of the directory's
    with PartnerClient(
        "apec-r11", dev_private_key("cap-emploi-r11"), bus.broker, requests=bus.requests
    ) as forger:
        forged = forger.update(
            referral, ReferralStatus.INTERIM_UPDATE, event_id=derived_event_id(referral.referral_id, "forged")
        )
        forger.send(forged)
    # apec-r11's own key id, over a signature by cap-emploi-r11's key
    posing = forged.model_copy(
        update={
            "envelope": forged.envelope.model_copy(
                update={"event_id": derived_event_id(referral.referral_id, "forged-key-id")}
            )
        }
    )
    apec_key_id = load_directory().current_key("apec-r11").key_id
    with bus.publisher() as publisher:
        publisher.publish(
            posing, signer=StatementSigner("apec-r11", apec_key_id, dev_private_key("cap-emploi-r11"))
        )
    expected = {codec.encode(forged): "unknown_key", codec.encode(posing): "bad_signature"}
    # the router's edge refuses each with the reason (the ledger, which reads the topic too, as well)
    letters = dead_letters(
        bus, want=2, where=lambda d: d.service == "router" and d.original_value in expected
    )
    assert {d.original_value: d.reason.split(":")[0] for d in letters} == expected
    # nobody proved to be apec-r11: apec-r11 is not sent a rejection notice it never caused
    group = f"cepbus-partner-apec-r11-t{uuid.uuid4().hex[:8]}"  # within its KafkaUser's group prefix
    forged_ids = {str(forged.event_id), str(posing.event_id)}
    with Subscriber("apec-r11", bus.broker, group_id=group, requests=bus.requests) as inbox:
        found: list[ReferralUpdateRejected] = []
        mine: list[Delivery] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for item in inbox.poll(timeout_s=0.5):
                if not isinstance(item, Delivery):
                    continue
                if item.event.envelope.person_pseudonym == referral.envelope.person_pseudonym:
                    mine.append(item)
                event = item.event
                if isinstance(event, ReferralUpdateRejected) and event.rejected_event_id in forged_ids:
                    found.append(event)
    assert found == []
    # what the Subscriber delivered of this person: the referral, as the router derived and signed it
    assert [(d.event.event_id, d.author) for d in mine] == [(referral.event_id, "cep-bus-router")]
    view = wait_status(bus, referral.referral_id, "completed", timeout_s=5)
    assert len(view["history"]) == 5


def forge_referrals(person: str) -> dict[str, tuple[ReferralRequested, StatementSigner | None]]:
    """Referrals for apec-r11 that its author never signed as such, by the reason the reader must give:
    what only the router may write to the inbox (an ACL refuses it on a real cluster; the partner must not
    believe it either)."""
    [router_key_id] = [k.key_id for k in load_directory().all_keys() if k.org_id == "cep-bus-router"]
    made: dict[str, tuple[ReferralRequested, StatementSigner | None]] = {}
    for reason, signer in (
        ("unsigned", None),
        ("misattributed", development_signer("cep-r11")),  # produced as the router, the operator's key
        ("bad_signature", StatementSigner("cep-bus-router", router_key_id, dev_private_key("cep-r11"))),
        ("unknown_key", StatementSigner("cep-bus-router", "0123456789abcdef", dev_private_key("cep-r11"))),
    ):
        made[reason] = (referral("cep-r11", "apec-r11", person=person), signer)
    return made


def test_the_partner_process_never_answers_a_forged_referral_in_its_inbox(
    bus: RunningBus, partner_process: PartnerProcess
) -> None:
    """Forged referrals written straight into apec-r11's inbox, then a genuine one behind them: the
    partner answers the genuine one (so it has read past the forgeries, one partition), sets each
    forgery aside with the reason (its log), and sends nothing about any of them."""
    forged = forge_referrals(f"p-inbox-forged-{uuid.uuid4().hex[:8]}")
    producer = KafkaProducer(bootstrap_servers=bus.broker.bootstrap_list, acks="all")
    try:
        for event, signer in forged.values():
            value = codec.encode(event)
            headers = [] if signer is None else [(SIGNATURE_HEADER, signer.sign([value])[0].header())]
            producer.send(
                referral_inbox("apec-r11").name, key=event.partition_key(), value=value, headers=headers
            )
        producer.flush()
    finally:
        producer.close()
    intake_event, choice, genuine = switch_to_apec(f"p-after-forged-{uuid.uuid4().hex[:8]}")
    with bus.publisher() as publisher:
        publisher.publish(intake_event)
        publisher.publish(choice)
    wait_status(bus, genuine.referral_id, "completed")
    by_id = {str(event.event_id): reason for reason, (event, _) in forged.items()}
    set_aside = {
        line["event_id"]: line["reason"]
        for line in partner_process.log_lines()
        if line.get("event") == "partner_unverified" and line.get("event_id") in by_id
    }
    assert set_aside == by_id
    # had it answered one, its update of a referral the router never routed would be refused (the forged
    # referrals themselves are dead-lettered by the mailer, which also reads the inboxes: not answers)
    referral_ids = {event.referral_id for event, _ in forged.values()}
    answers = dead_letters(
        bus,
        timeout_s=3,
        where=lambda d: (
            isinstance(event := _decoded(d.original_value), ReferralStatusChanged)
            and event.referral_id in referral_ids
        ),
    )
    assert answers == []
    for referral_id in referral_ids:
        assert http_json(bus, f"/referrals/{referral_id}")[0] == 404  # the router never saw it either


def _decoded(value: bytes | None) -> Any:
    try:
        return codec.decode(value) if value else None
    except codec.DecodeError:
        return None


def pass_the_routers_deadline(bus: RunningBus, referral_id: str) -> None:
    """What the business days to its pending deadline would do on the router's clock, in the router's own
    store (a test cannot wait them): the deadline is now in the past. The router's sweep does the rest."""
    with sqlite3.connect(bus.referrals_url.removeprefix("sqlite:///"), timeout=30) as db:
        db.execute(
            "UPDATE referrals SET due_at_ms = ? WHERE referral_id = ?",
            (int(time.time() * 1000) - 1000, referral_id),
        )
    db.close()


def test_overdue_referral_and_ping_pong_reach_the_ledger(bus: RunningBus) -> None:
    """A referral nobody answers is reported by the router's deadline timer once the router's own deadline
    has passed (its claim of ten days ago starts no clock: tests/integration/test_bus_clock.py); a person
    sent back to the organisation that referred them away raises a ping-pong alert."""
    from cepbus_app.demo.referrals import partner_referrals

    seed = int(uuid.uuid4().int % 1_000_000)
    backlog = partner_referrals(seed)
    # spro-r53, claimed 10 days ago: no partner process serves it, so it stays unanswered
    silent = next(r for r in backlog if r.recipient_org_id == "spro-r53")
    away, back = backlog[-2], backlog[-1]
    with bus.publisher() as publisher:
        publisher.publish_many([silent, away, back])
    breach_ids = {service_id(silent.referral_id, "deadline-breached:received")}
    alert_id = service_id(back.referral_id, "alert:ping_pong")
    assert not wait_for_ids(bus, {alert_id}), "the ping-pong alert never reached the ledger"
    pass_the_routers_deadline(bus, silent.referral_id)
    assert not wait_for_ids(bus, breach_ids), "the breach never reached the ledger"
    code, view = http_json(bus, f"/referrals/{silent.referral_id}", as_org=silent.requester_org_id)
    assert code == 200 and view["referral"]["status"] == "requested"
    assert [b["deadline"] for b in view["breaches"]] == ["received"]
    time.sleep(2.5)  # two more sweeps: the same deadline is not reported again
    code, view = http_json(bus, f"/referrals/{silent.referral_id}", as_org=silent.requester_org_id)
    assert [b["deadline"] for b in view["breaches"]] == ["received"]
