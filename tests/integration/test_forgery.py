"""Statements, not claims, end to end on the session bus (issue #23): each attack is played as its
author would, with the bytes on the real broker, and must be refused at the edge of every service that
reads it (a dead letter with the reason), leaving no trace in the ledger, the router or the audit.

- a partner writes a referral request in the router's name, or for an operator (finding 2), signed with
  its own key, unsigned, with a signature lifted from a genuine event, in either framing;
- the same for another event type (an intake in an operator's name, a decision in the router's);
- a forged dead letter, and a genuine dead letter whose original is a forged verdict, replayed with the
  operator's ordinary command (finding 5): nothing applied enters the ledger;
- a valid signed status update with a 1 MB note (finding 1): refused with the field named, while another
  organisation's referral flows at once;
- a service pointed at an older, genuinely signed directory (finding 7): it refuses to start.

The Faust runtime plays the forgeries too (tests/integration/test_faults.py, both runtimes).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from cepbus.contract import codec
from cepbus.contract.headers import SIGNATURE_HEADER
from cepbus.contract.models import (
    DecisionStatus,
    Event,
    IntakeDecided,
    OrganisationKind,
    ReferralRequested,
    ReferralStatus,
    ReferralUpdateVerdict,
    UpdateVerdict,
    new_envelope,
)
from cepbus.contract.topics import (
    INTAKE_DECIDED,
    INTAKE_REGISTERED,
    REFERRAL_REQUESTED,
    REFERRAL_STATUS,
    REFERRAL_VERDICT,
    topic_for,
)
from cepbus.contract.wiring import SERVICES
from cepbus.reference.directory import packaged_directory_text, read_document, sign_document
from cepbus.runtime.framing import Framing
from cepbus.trust.development import dev_authority_key
from services.deadletters.store import DeadLetterStore
from services.ledger.store import SqlLedgerStore
from tests.conftest import free_port
from tests.integration.test_referral_loop import http_json
from tests.support.authorship import signer
from tests.support.bus import RunningBus, dead_letters, wait_for_ids
from tests.support.factories import dead_letter_of, intake, update
from tests.support.processes import stop_process

pytestmark = pytest.mark.integration

PARTNER = "exemple-formation-r84"  # a local training partner: it may write referral requests
OPERATOR = "cep-r84"
ROUTER = "cep-bus-router"


def readers(topic: str) -> set[str]:
    return {service for service, access in SERVICES.items() if access.may_read(topic)}


def sent_raw(
    bus: RunningBus,
    event: Event,
    *,
    key_of: str | None,
    topic: str | None = None,
    signature: bytes | None = None,
    framing: str = "single-object",
) -> bytes:
    """Put `event` on the broker as an attacker would, without the SDK's checks: its statement signed by
    `key_of`'s key (None: unsigned), or with the `signature` header given. Returns the bytes sent."""
    statement = codec.encode(event)
    header = signature
    if key_of is not None:
        [signed] = signer(key_of).sign([statement])
        header = signed.header()
    topic = topic or topic_for(event).name
    value = Framing(framing).frame(statement, topic)
    producer = KafkaProducer(bootstrap_servers=bus.broker.bootstrap_list, max_request_size=4_000_000)
    try:
        headers = [] if header is None else [(SIGNATURE_HEADER, header)]
        producer.send(topic, value=value, key=event.partition_key(), headers=headers).get(timeout=30)
    finally:
        producer.close()
    return value


def refusals(bus: RunningBus, value: bytes, services: set[str], timeout_s: float = 60.0) -> dict[str, str]:
    """service -> reason of the dead letters each of `services` wrote for exactly these bytes."""
    digest = hashlib.sha256(value).hexdigest()
    found = dead_letters(bus, timeout_s, want=len(services), where=lambda d: d.original_sha256 == digest)
    return {letter.service: letter.reason.split(":", 1)[0] for letter in found}


def in_ledger(bus: RunningBus, event_id: object) -> bool:
    with SqlLedgerStore(bus.ledger_url) as store:
        return str(event_id) in store.known_event_ids([str(event_id)])


def referral_request(producer: str, requester: str = OPERATOR) -> ReferralRequested:
    return ReferralRequested(
        envelope=new_envelope(
            ReferralRequested,
            producer_org_id=producer,
            person_pseudonym=f"p-forged-{uuid.uuid4().hex[:8]}",
        ),
        referral_id=str(uuid.uuid4()),
        requester_org_id=requester,
        recipient_org_id="mission-locale-r84",
        recipient_kind=OrganisationKind.MISSION_LOCALE,
        region_code="84",
        reason="orientation",
        consent_to_share=False,
    )


def genuine_signature_of(org_id: str) -> bytes:
    """A valid header from another event `org_id` really signed (copied off the wire)."""
    other = intake(operator_id=org_id) if org_id.startswith("cep-") else referral_request(org_id, org_id)
    [signed] = signer(org_id).sign([codec.encode(other)])
    return signed.header()


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("in_the_routers_name", "misattributed"),
        ("in_the_routers_name_confluent_framing", "misattributed"),
        ("for_an_operator", "claim_mismatch"),
        ("unsigned", "unsigned"),
        ("with_a_lifted_signature", "bad_signature"),
    ],
)
def test_a_partner_cannot_write_a_referral_request_for_someone_else(
    bus: RunningBus, attack: str, reason: str
) -> None:
    if attack.startswith("in_the_routers_name"):
        forged = referral_request(ROUTER)  # as the router would derive it from cep-r84's intake
        framing = "confluent" if attack.endswith("confluent_framing") else "single-object"
        value = sent_raw(bus, forged, key_of=PARTNER, framing=framing)
    elif attack == "for_an_operator":
        forged = referral_request(PARTNER, requester=OPERATOR)
        value = sent_raw(bus, forged, key_of=PARTNER)
    elif attack == "unsigned":
        forged = referral_request(OPERATOR)
        value = sent_raw(bus, forged, key_of=None)
    else:
        forged = referral_request(OPERATOR)
        value = sent_raw(bus, forged, key_of=None, signature=genuine_signature_of(OPERATOR))
    expected = readers(REFERRAL_REQUESTED.name)
    assert expected == {"router", "ledger"}
    assert refusals(bus, value, expected) == {service: reason for service in expected}
    assert not in_ledger(bus, forged.event_id)  # not in the regulator's trail, nor in its audit
    code, _ = http_json(bus, f"/referrals/{forged.referral_id}", as_org=OPERATOR)
    assert code == 404  # the router tracks no such referral, so no inbox delivery and no deadline


def test_another_event_type_in_another_partys_name_is_refused(bus: RunningBus) -> None:
    """An intake in an operator's name and a decision in the router's, both signed by a partner."""
    forged_intake = intake(operator_id=OPERATOR, region="84", departement="69", occurred_at=datetime.now(UTC))
    intake_value = sent_raw(bus, forged_intake, key_of=PARTNER)
    genuine = intake(operator_id=OPERATOR, region="84", departement="69", occurred_at=datetime.now(UTC))
    decision = IntakeDecided(
        envelope=new_envelope(
            IntakeDecided, producer_org_id=ROUTER, person_pseudonym=genuine.envelope.person_pseudonym
        ),
        intake_event_id=str(genuine.event_id),
        operator_id=OPERATOR,
        operator_kind=OrganisationKind.REGIONAL_CEP,
        region_code="84",
        departement_code="69",
        status=DecisionStatus.DECIDED,
        inform=[],
        notice_due=False,
        rules=["R-FORGED"],
        reasons=[],
        missing_fields=[],
        ruleset_version="forged",
        reference_version="forged",
    )
    decision_value = sent_raw(bus, decision, key_of=PARTNER)
    assert refusals(bus, intake_value, readers(INTAKE_REGISTERED.name)) == {
        service: "misattributed" for service in readers(INTAKE_REGISTERED.name)
    }
    assert refusals(bus, decision_value, readers(INTAKE_DECIDED.name)) == {"ledger": "misattributed"}
    assert not in_ledger(bus, forged_intake.event_id) and not in_ledger(bus, decision.event_id)


# -- dead letters that cannot forge ----------------------------------------------------------------


def forged_verdict() -> ReferralUpdateVerdict:
    """An "accepted, applied" verdict on a referral, as only the router may state one."""
    return ReferralUpdateVerdict(
        envelope=new_envelope(
            ReferralUpdateVerdict,
            producer_org_id=ROUTER,
            person_pseudonym=f"p-verdict-{uuid.uuid4().hex[:8]}",
        ),
        update_event_id=str(uuid.uuid4()),
        referral_id=str(uuid.uuid4()),
        verdict=UpdateVerdict.APPLIED,
        status=ReferralStatus.ACCEPTED,
        signer_org_id=PARTNER,
        state_before=ReferralStatus.REQUESTED,
        state_after=ReferralStatus.ACCEPTED,
        claimed_occurred_at=datetime.now(UTC),
    )


def replay(bus: RunningBus, letter_id: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CEPBUS_BOOTSTRAP_SERVERS": bus.bootstrap,
        "CEPBUS_DEADLETTERS_DATABASE_URL": bus.deadletters_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "cepbus_app", "deadletters", "replay", letter_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_letter(bus: RunningBus, value: bytes, service: str, timeout_s: float = 60.0) -> str:
    """The id of the dead letter `service` wrote for these bytes, once the archive holds it."""
    digest = hashlib.sha256(value).hexdigest()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with DeadLetterStore(bus.deadletters_url) as store:
            for letter in store.list(limit=100_000):
                if letter.original_sha256 == digest and letter.service == service and not letter.replay_of:
                    return letter.event_id
        time.sleep(0.5)
    raise AssertionError(f"the archive holds no dead letter of {service} for these bytes")


def test_a_forged_dead_letter_replayed_creates_nothing(bus: RunningBus) -> None:
    """A partner signs a dead letter whose original is a forged "applied" verdict: the archive refuses
    it (only the bus's services may write a dead letter) and keeps it as the original of its own dead
    letter; an operator's replay of that sends nothing (a dead letter is no event a service takes)."""
    verdict = forged_verdict()
    original = codec.encode(verdict)
    letter = dead_letter_of(
        verdict,
        REFERRAL_VERDICT.name,
        producer_org_id=PARTNER,
        reason="handler_error: forged",
        error_class="Forged",
        offset=0,
        original_sha256=hashlib.sha256(original).hexdigest(),
        original_size=len(original),
    )
    value = sent_raw(bus, letter, key_of=PARTNER)
    assert refusals(bus, value, {"deadletters"}) == {"deadletters": "producer_not_allowed"}
    letter_id = stored_letter(bus, value, "deadletters")
    replayed = replay(bus, letter_id)  # the archive's letter keeps the forged dead letter as original
    assert replayed.returncode == 3, replayed.stderr  # a dead letter goes back nowhere: no service takes it
    assert "no event a service consumes" in replayed.stderr
    assert not in_ledger(bus, verdict.event_id) and not in_ledger(bus, letter.event_id)


def test_a_forged_verdict_replayed_from_a_genuine_dead_letter_never_reaches_the_ledger(
    bus: RunningBus,
) -> None:
    """The forged verdict sent where the router reads (cep.referral.status): the router dead-letters
    it, genuinely. Replayed, it goes to the topic of its type, cep.referral.verdict, with the partner's
    signature: the ledger refuses it, and the audit counts no acceptance."""
    verdict = forged_verdict()
    value = sent_raw(bus, verdict, key_of=PARTNER, topic=REFERRAL_STATUS.name)
    assert refusals(bus, value, readers(REFERRAL_STATUS.name)) == {
        "router": "unexpected_event_type",  # not an update
        "ledger": "misattributed",  # the ledger takes every type, but only its author's word
    }
    letter_id = stored_letter(bus, value, "router")
    replayed = replay(bus, letter_id)
    assert replayed.returncode == 0, replayed.stderr
    verdict_readers = readers(REFERRAL_VERDICT.name)
    assert verdict_readers == {"ledger", "mailer"}  # the mailer emails the requester of an applied step
    again = dead_letters(bus, 60, want=len(verdict_readers), where=lambda d: d.replay_of == letter_id)
    assert sorted((d.service, d.source_topic, d.reason.split(":", 1)[0]) for d in again) == [
        (service, REFERRAL_VERDICT.name, "misattributed") for service in sorted(verdict_readers)
    ]
    assert not in_ledger(bus, verdict.event_id)


# -- no single message halts a route ---------------------------------------------------------------


def test_a_signed_update_with_a_megabyte_note_is_refused_and_another_referral_flows_at_once(
    bus: RunningBus,
) -> None:
    recipient = "mission-locale-r84"
    referral = referral_request(OPERATOR)
    with bus.publisher() as publisher:
        publisher.publish(referral)
    assert not wait_for_ids(bus, {str(referral.event_id)})
    # the recipient's own key, a valid statement: only the note is a megabyte long (under the broker's
    # limit, which the field bound is far below)
    valid = update(referral, ReferralStatus.ACCEPTED, sender=recipient, at=datetime.now(UTC))
    huge = valid.model_copy(update={"note": "n" * 990_000})
    other = referral_request("cep-r11", requester="cep-r11").model_copy(
        update={"recipient_org_id": "mission-locale-r11", "region_code": "11"}
    )
    started = time.monotonic()
    value = sent_raw(bus, huge, key_of=recipient)
    with bus.publisher() as publisher:
        publisher.publish(other)
    assert not wait_for_ids(bus, {str(other.event_id)}, timeout_s=60)
    flowed_s = time.monotonic() - started
    reasons = refusals(bus, value, readers(REFERRAL_STATUS.name))
    assert set(reasons) == readers(REFERRAL_STATUS.name) and set(reasons.values()) == {"invalid_content"}
    digest = hashlib.sha256(value).hexdigest()
    [letter, *_] = dead_letters(bus, 10, where=lambda d: d.original_sha256 == digest)
    assert "note" in letter.reason  # the field the bound refused is named
    assert not in_ledger(bus, huge.event_id)
    print(f"the other organisation's referral reached the ledger {flowed_s:.2f} s after the 1 MB update")
    assert flowed_s < 5, "another organisation's referral waited behind the oversized update"


# -- a directory whose history is kept --------------------------------------------------------------


def directory_version(path: Path, serial: int) -> Path:
    """The packaged (development) directory re-issued under `serial`, signed by the development
    authority: genuinely signed, as an older version from before a revocation would be."""
    document = read_document(packaged_directory_text())
    body = dict(document["signed"], serial=serial)
    path.write_text(json.dumps(sign_document(body, dev_authority_key())), encoding="utf-8")
    return path


@pytest.fixture
def notifier_env(bus: RunningBus, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {
        **os.environ,
        "CEPBUS_BOOTSTRAP_SERVERS": bus.bootstrap,
        "CEPBUS_NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'notifier.db'}",
        "CEPBUS_NOTIFIER_GROUP_ID": f"cepbus-notifier-directory-{uuid.uuid4().hex[:8]}",
        "CEPBUS_NOTIFIER_METRICS_PORT": str(free_port()),
    }


def test_a_service_refuses_a_directory_older_than_the_newest_it_ran_with(
    notifier_env: dict[str, str], tmp_path: Path
) -> None:
    newer = directory_version(tmp_path / "directory-8.json", 8)
    older = directory_version(tmp_path / "directory-7.json", 7)
    log = tmp_path / "notifier.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.notifier"],
            env={**notifier_env, "CEPBUS_DIRECTORY_PATH": str(newer)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while b"partitions_assigned" not in log.read_bytes() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text(errors="replace")
            time.sleep(0.25)
    finally:
        stop_process(process, log)
    refused = subprocess.run(
        [sys.executable, "-m", "services.notifier"],
        env={**notifier_env, "CEPBUS_DIRECTORY_PATH": str(older)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2, refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert "serial 7, older than serial 8" in last and "Traceback" not in refused.stderr
