"""Closed-loop referrals through the real broker: the router as its own process, an example partner
process answering from its inbox, signed updates applied, forged ones refused with a dead letter and
a rejection event on the sender's topic, the read side over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cepbus.contract import codec
from cepbus.contract.models import (
    Choice,
    ChoiceRecorded,
    IntakeRegistered,
    OrganisationKind,
    ReferralRequested,
    ReferralStatus,
    ReferralUpdateRejected,
    derived_event_id,
    new_envelope,
)
from cepbus.reference import load_reference
from cepbus.sdk.partner import Delivery, PartnerClient, Subscriber
from cepbus.trust.development import dev_private_key
from services.router.handlers import RouterHandlers
from tests.support.bus import RunningBus, dead_letters, wait_for_applied_verdicts, wait_for_ids
from tests.support.factories import intake, service_id
from tests.support.processes import stop_process

pytestmark = pytest.mark.integration
PARTNER_ORGS = ("apec-r11", "cap-emploi-r11")


@pytest.fixture(scope="module")
def partner_process(
    bus: RunningBus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
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
        yield process
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


def test_a_partner_process_closes_the_loop(bus: RunningBus, partner_process: subprocess.Popen[bytes]) -> None:
    intake_event, choice, referral = switch_to_apec(f"p-loop-{uuid.uuid4().hex[:8]}")
    with bus.publisher() as publisher:
        publisher.publish(intake_event)
        publisher.publish(choice)
    view = wait_status(bus, referral.referral_id, "completed")
    assert partner_process.poll() is None
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
    bus: RunningBus, partner_process: subprocess.Popen[bytes]
) -> None:
    intake_event, choice, referral = switch_to_apec(f"p-forged-{uuid.uuid4().hex[:8]}")
    with bus.publisher() as publisher:
        publisher.publish(intake_event)
        publisher.publish(choice)
    wait_status(bus, referral.referral_id, "completed")
    # apec-r11's name, another organisation's key: refused, state unchanged
    with PartnerClient(
        "apec-r11", dev_private_key("cap-emploi-r11"), bus.broker, requests=bus.requests
    ) as forger:
        forged = forger.update(
            referral, ReferralStatus.INTERIM_UPDATE, event_id=derived_event_id(referral.referral_id, "forged")
        )
        forger.send(forged)
    forged_bytes = codec.encode(forged)
    letters = dead_letters(bus, want=1, where=lambda d: d.original_value == forged_bytes)
    assert letters and letters[0].reason.startswith("bad_signature") and letters[0].service == "router"
    # nobody proved to be apec-r11: apec-r11 is not sent a rejection notice it never caused
    group = f"cepbus-partner-apec-r11-t{uuid.uuid4().hex[:8]}"  # within its KafkaUser's group prefix
    with Subscriber("apec-r11", bus.broker, group_id=group, requests=bus.requests) as inbox:
        found: list[ReferralUpdateRejected] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for item in inbox.poll(timeout_s=0.5):
                event = item.event if isinstance(item, Delivery) else None
                if isinstance(event, ReferralUpdateRejected) and event.rejected_event_id == str(
                    forged.event_id
                ):
                    found.append(event)
    assert found == []
    view = wait_status(bus, referral.referral_id, "completed", timeout_s=5)
    assert len(view["history"]) == 5


def test_overdue_referral_and_ping_pong_reach_the_ledger(bus: RunningBus) -> None:
    """A referral nobody answers, requested two weeks ago, is reported by the router's deadline timer;
    a person sent back to the organisation that referred them away raises a ping-pong alert."""
    from cepbus_app.demo.referrals import partner_referrals

    seed = int(uuid.uuid4().int % 1_000_000)
    backlog = partner_referrals(seed)
    # spro-r53, requested 10 days ago: no partner process serves it, so it stays unanswered
    silent = next(r for r in backlog if r.recipient_org_id == "spro-r53")
    away, back = backlog[-2], backlog[-1]
    with bus.publisher() as publisher:
        publisher.publish_many([silent, away, back])
    breach_ids = {service_id(silent.referral_id, "deadline-breached:received")}
    alert_id = service_id(back.referral_id, "alert:ping_pong")
    assert not wait_for_ids(bus, {*breach_ids, alert_id}), "breach or alert never reached the ledger"
    code, view = http_json(bus, f"/referrals/{silent.referral_id}", as_org=silent.requester_org_id)
    assert code == 200 and view["referral"]["status"] == "requested"
    assert [b["deadline"] for b in view["breaches"]] == ["received"]
    time.sleep(2.5)  # two more sweeps: the same deadline is not reported again
    code, view = http_json(bus, f"/referrals/{silent.referral_id}", as_org=silent.requester_org_id)
    assert [b["deadline"] for b in view["breaches"]] == ["received"]
