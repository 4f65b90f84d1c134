"""Issue 23, item 4, end to end on the session bus: a person with distinctive facts (a disability, so the
notice tells them of Cap emploi; a switch to Cap emploi with consent to share their profile; a partner's
status update with a note; a message of theirs dead-lettered) goes through the real services; once
`cep-bus erase --person P` has run, every file of every store (the SQLite databases, their WAL and
shared-memory files), the dead-letter archive and every service's log is read as bytes and holds none of
it; the erased person's ledger leaves keep no fact that names Cap emploi; and the notice-hash dictionary
attack of finding 4 (every notice the person could have been given, hashed) matches nothing in their
leaves nor in an export bundle."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from cepbus.auditlog.leaf import LedgerRecord
from cepbus.contract import codec
from cepbus.contract.models import (
    CEP_OPERATOR_KINDS,
    Event,
    NoticeIssued,
    NoticeObligation,
    NoticeRequested,
    OrganisationKind,
    ReferralRequested,
    ReferralStatus,
)
from cepbus.contract.rule_ids import PUBLIC_AGENT_RULE
from cepbus.contract.topics import INTAKE_REGISTERED
from cepbus.reference import ReferenceDataError, load_reference
from cepbus.reference.directory import load_directory
from cepbus.sdk.partner import PartnerClient
from cepbus.trust.development import dev_private_key
from services.deadletters.store import DeadLetterStore, ErasedData
from services.ledger.store import DIGESTS, KEYS, SqlLedgerStore
from services.notifier.notice import render_notice
from services.router.store import RouterStore
from tests.support.bus import RunningBus, wait_for_ids
from tests.support.factories import intake, service_id, switch_choice

pytestmark = pytest.mark.integration
PARTNER = "cap-emploi-r84"  # who a person of region 84 switching to Cap emploi is referred to


def ledger_event(store: SqlLedgerStore, event_id: str) -> Event:
    index = store.index_of(event_id)
    assert index is not None, f"{event_id} is not in the ledger"
    return codec.decode(store.open_payload(index))


def wait_until(what: str, ready: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.25)


def garbage_of(archive: DeadLetterStore, event_id: str) -> bytes | None:
    try:
        return archive.original(event_id)[1]
    except ErasedData:  # another person, erased by another test
        return None


def files_under(workdir: Path) -> dict[str, bytes]:
    """Every file of the bus's work directory: each store's database, -wal and -shm, the logs."""
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}


def candidate_notices(request: NoticeRequested) -> dict[str, NoticeRequested]:
    """Every notice the person could have been given where and how they were received: any set of
    CEP operators to be told of, with or without the public-agent wording, obligatory or not (the
    dictionary of finding 4: the text is a function of these and of what the leaf keeps in clear)."""
    kinds = sorted(CEP_OPERATOR_KINDS, key=lambda kind: kind.value)
    found: dict[str, NoticeRequested] = {}
    for size in range(len(kinds) + 1):
        for inform in itertools.combinations(kinds, size):
            for rules in (["R-CANDIDATE"], [PUBLIC_AGENT_RULE]):
                for obligation in NoticeObligation:
                    candidate = request.model_copy(
                        update={"inform": list(inform), "rules": rules, "obligation": obligation}
                    )
                    try:
                        text = render_notice(candidate, load_reference()).text
                    except ReferenceDataError:
                        continue
                    found[text] = candidate
    return found


def forms_of(digest: bytes) -> list[bytes]:
    """The ways a SHA-256 can be written down: raw, hex, base64."""
    return [digest, digest.hex().encode(), base64.b64encode(digest), base64.b64encode(digest).rstrip(b"=")]


@dataclass
class Erased:
    """The person as seeded, what was learnt of them before the erasure, and the erasure's report."""

    person: str
    key_id: str
    needles: dict[str, bytes]
    leaves: dict[int, bytes]  # their ledger leaves before the erasure, by index
    request: NoticeRequested
    notice: NoticeIssued
    report: dict[str, Any]
    workdir: Path
    env: dict[str, str]


def seed(bus: RunningBus, run: str) -> tuple[str, str, str, NoticeRequested, NoticeIssued]:
    """One person through the real services: an intake with a disability (the notice tells them of
    Cap emploi), a switch to Cap emploi with consent (a referral carrying their profile), the partner's
    update with a note, and a message of theirs no service can read (dead-lettered twice)."""
    person = f"p-erasure-{run}"
    site = f"Antenne Handicap Emploi Vénissieux {run}"  # the free reception-site text (sealed)
    note = f"Reconnaissance RQTH, fauteuil roulant, rappeler le {run}"  # the partner's note (sealed)
    the_intake = intake(
        person=person,
        boeth=True,
        birth_year=1951,
        region="84",
        departement="69",
        occurred_at=datetime.now(UTC),
    ).model_copy(update={"reception_site": site})
    notice_id = service_id(the_intake.event_id, "notice-requested", "notice-issued")
    with bus.publisher() as publisher:
        publisher.publish(the_intake)
        assert not wait_for_ids(bus, {notice_id, service_id(the_intake.event_id, "intake-decided")})
        with RouterStore(bus.router_url) as router:  # the choice needs the notice in the router's state
            wait_until("the router records the notice", lambda: bool(router.known_event_ids({notice_id})))
        choice = switch_choice(the_intake)
        publisher.publish(choice)
    referral_event_id = service_id(choice.event_id, "referral-requested")
    assert not wait_for_ids(bus, {referral_event_id})
    with SqlLedgerStore(bus.ledger_url) as ledger:
        referral = ledger_event(ledger, referral_event_id)
        notice = ledger_event(ledger, notice_id)
        request = ledger_event(ledger, service_id(the_intake.event_id, "notice-requested"))
    assert isinstance(referral, ReferralRequested) and referral.recipient_org_id == PARTNER
    assert referral.shared_profile is not None and referral.shared_profile.boeth is True
    assert isinstance(notice, NoticeIssued) and notice.inform == [OrganisationKind.CAP_EMPLOI]
    assert isinstance(request, NoticeRequested) and "R-CAPEMPLOI-BOETH" in request.rules
    with PartnerClient(PARTNER, dev_private_key(PARTNER), bus.broker, requests=bus.requests) as partner:
        partner.send(partner.update(referral, ReferralStatus.RECEIVED, note=note))
    with SqlLedgerStore(bus.ledger_url) as ledger:

        def verdict_recorded() -> bool:
            return any(
                e.record.facts.get("referral_id") == referral.referral_id
                and e.record.facts.get("verdict") == "applied"
                for e in ledger.entries()
            )

        wait_until("the ledger records the router's verdict on the partner's update", verdict_recorded)
    garbage = f"not an avro event, about {site}".encode()
    producer = KafkaProducer(bootstrap_servers=bus.broker.bootstrap_list, acks="all")
    producer.send(INTAKE_REGISTERED.name, key=person.encode(), value=garbage).get(timeout=10)
    producer.close()
    with DeadLetterStore(bus.deadletters_url) as archive:

        def archived() -> int:
            letters = archive.list(reason="bad_marker")
            return sum(1 for d in letters if garbage_of(archive, d.event_id) == garbage)

        wait_until("the router's and the ledger's dead letters are archived", lambda: archived() == 2)
    return person, site, note, request, notice


@pytest.fixture(scope="module")
def erased(bus: RunningBus) -> Erased:
    """The person seeded, then `cep-bus erase --person P` run as the operator runs it, on the live bus."""
    person, site, note, request, notice = seed(bus, uuid.uuid4().hex[:10])
    with SqlLedgerStore(bus.ledger_url) as ledger:
        [(key_id,)] = ledger._query(f"SELECT key_id FROM {KEYS} WHERE pseudonym = ?", (person,))
        leaves = {
            e.index: e.leaf
            for e in ledger.entries()
            if e.record.sealed is not None and e.record.sealed.key_id == key_id
        }
        digest = ledger._query(f"SELECT digest FROM {DIGESTS} WHERE event_id = ?", (str(notice.event_id),))
    assert len(leaves) >= 8  # intake, decision, request, notice, choice, referral, update, verdict
    text = notice.text.encode()
    needles = {
        "pseudonym": person.encode(),
        "reception site": site.encode(),
        "note": note.encode(),
        "notice text": text,
        "rule": b"R-CAPEMPLOI-BOETH",
        "profile": b'"birth_year":1951',
        "notice content digest": str(digest[0][0]).encode(),
        **{f"notice sha256 ({i})": form for i, form in enumerate(forms_of(hashlib.sha256(text).digest()))},
    }
    workdir = Path(bus.ledger_url.removeprefix("sqlite:///")).parent
    before = b"".join(files_under(workdir).values())
    assert needles["pseudonym"] in before and needles["notice content digest"] in before  # can fail
    env = {**os.environ, **bus.supervisor.env}
    erasure = subprocess.run(
        [sys.executable, "-m", "cepbus_app", "erase", "--person", person, "--json"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert erasure.returncode == 0, erasure.stderr.decode()
    time.sleep(2.0)  # the services keep running: whatever they would still write about the person, now
    return Erased(
        person, str(key_id), needles, leaves, request, notice, json.loads(erasure.stdout), workdir, env
    )


def test_erase_reaches_every_store(erased: Erased) -> None:
    report = erased.report
    assert report["ledger_erasure_index"] is not None and report["referrals"] == 1
    assert report["router_intakes"] == 1 and report["dead_letters"] == 2
    assert set(report["stores"]) == {"ledger", "router", "referrals", "notifier", "deadletters", "mailer"}


def test_no_store_file_and_no_log_holds_anything_of_the_erased_person(
    bus: RunningBus, erased: Erased
) -> None:
    """Every file under the bus's directory (each store's database, -wal, -shm; the logs), and each
    service's log wherever the supervisor writes it, read as bytes."""
    files = files_under(erased.workdir)
    for service, process in bus.supervisor.processes.items():
        files[f"log of {service}"] = process.log_path.read_bytes()
    assert any(name.endswith("notifier.db") for name in files) and any("deadletters" in n for n in files)
    found = sorted(
        (name, what)
        for name, data in files.items()
        for what, needle in erased.needles.items()
        if needle in data
    )
    assert not found, f"still readable after the erasure: {found}"


def test_the_erased_persons_leaves_keep_no_fact_naming_cap_emploi(bus: RunningBus, erased: Erased) -> None:
    with SqlLedgerStore(bus.ledger_url) as ledger:
        after = {e.index: e for e in ledger.entries() if e.index in erased.leaves}
        erasure = next(ledger.entries(erased.report["ledger_erasure_index"])).record
        assert ledger.verify().ok
    assert erasure.facts == {"erased_key_id": erased.key_id}
    assert {index: entry.leaf for index, entry in after.items()} == erased.leaves  # the leaves unchanged
    for entry in after.values():
        facts = json.dumps(dict(entry.record.facts)).lower()
        assert "cap_emploi" not in facts and "cap-emploi" not in facts, entry.record.facts


def test_no_notice_hash_of_the_dictionary_matches_their_leaves_or_an_export_bundle(
    erased: Erased, tmp_path: Path
) -> None:
    """Finding 4: hash every notice the person could have been given; nothing in their leaves, nor in
    the bundle an auditor receives, may match one."""
    candidates = candidate_notices(erased.request)
    assert erased.notice.text in candidates and len(candidates) >= 62  # the true notice is in it
    hashes = [form for text in candidates for form in forms_of(hashlib.sha256(text.encode()).digest())]
    for index, leaf in erased.leaves.items():
        assert not [h for h in hashes if h in leaf], f"a notice hash in leaf {index}"
    bundle = tmp_path / "bundle.json"
    exported = subprocess.run(
        [sys.executable, "-m", "cepbus_app", "ledger", "export", "--out", str(bundle)],
        env=erased.env,
        capture_output=True,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr.decode()
    document = bundle.read_bytes()
    assert not [h for h in hashes if h in document], "a notice hash in the bundle"
    assert erased.person.encode() not in document and erased.notice.text.encode() not in document
    theirs = 0
    for item in json.loads(document)["entries"]:
        record = LedgerRecord.decode(base64.b64decode(item["leaf_b64"]))
        if record.sealed is not None and record.sealed.key_id == erased.key_id:
            theirs += 1
            assert "cap_emploi" not in json.dumps(dict(record.facts)), record.facts
    assert theirs == len(erased.leaves)


def test_no_leaf_of_the_erased_person_names_the_partner_by_its_statement_key(
    bus: RunningBus, erased: Erased
) -> None:
    """The partner answering the referral is its recipient (Cap emploi): its signature on the update
    is sealed with the event, the leaf keeps only the statement's digest (services/ledger/facts.py)."""
    partner_keys = {key.key_id.encode() for key in load_directory().keys_of(PARTNER)}
    assert partner_keys
    named = [index for index, leaf in erased.leaves.items() if any(k in leaf for k in partner_keys)]
    assert not named, f"leaves {named} carry {PARTNER}'s statement key id"
