"""The partner inbox end to end, in headless Chromium (Debian's, driven by Playwright): a regional
operator refers a person to a local partner as the demo does; the partner's staff log in with the
organisation's read-side token, load its key file into the browser, see the referral with its deadline,
acknowledge it, accept it and book the appointment, each step's statement rebuilt and signed in the
browser (WebCrypto Ed25519); the router applies the signed updates (read side), the ledger keeps its
applied verdicts, and each signature verifies with the directory key over the update's bytes. Another
organisation's referral is refused.

The inbox runs as its own process (`python -m services.inbox` through the composition root) against the
session bus's read side and broker, with the SDK's signing disabled in that process (`_NO_SDK_SIGNING`):
in development the SDK would sign an unsigned update with the partner's derivable key, which is the
very key loaded into the browser here, and Ed25519 is deterministic, so a signature the server made
would be byte for byte the browser's. With the SDK unable to sign, every update the router applies can
only carry the signature the browser posted; the test checks that each message on
`cep.referral.status` carries exactly that signature in its `cepbus-signature` header.
Screenshots of every page: `test-artifacts/inbox/` with CEPBUS_TEST_ARTIFACTS set, else tmp."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from kafka import KafkaConsumer, TopicPartition

from cepbus.contract import codec
from cepbus.contract.headers import SIGNATURE_HEADER
from cepbus.contract.models import (
    Envelope,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    derived_event_id,
    new_envelope,
)
from cepbus.contract.statements import StatementSignature
from cepbus.contract.topics import REFERRAL_STATUS
from cepbus.reference.directory import load_directory
from cepbus.trust.development import dev_private_key
from tests.conftest import free_port
from tests.support.authorship import authorship
from tests.support.browser import artifacts_dir, chromium, require_chromium
from tests.support.bus import RunningBus, wait_for_applied_verdicts
from tests.support.processes import stop_process

pytestmark = pytest.mark.integration

#: A region whose organisations no other integration test answers for (the Node client takes 84, the
#: referral loop's partner process 11): nothing but the browser moves these referrals.
OPERATOR, PARTNER, ELSEWHERE = "cep-r76", "transitions-pro-r76", "spro-r76"
APPLY_TIMEOUT_MS = 60_000
#: The inbox process, as `python -m cepbus_app.instrumented inbox` runs it, with the SDK's signing
#: disabled: a publish the inbox did not give the browser's signature fails instead of being signed.
_NO_SDK_SIGNING = """
import cepbus.sdk.publisher as sdk


def refused(*args, **kwargs):
    raise AssertionError("the inbox asked the SDK to sign: only the browser signs")


sdk.Publisher._signatures = refused
sdk.development_signer = refused
from cepbus_app.instrumented import main

main(["inbox"])
"""


@pytest.fixture(scope="module", autouse=True)
def browser_ready() -> None:
    """Skip (or fail, with CEPBUS_REQUIRE_BROWSER=1 as in CI) before the bus starts."""
    require_chromium()


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def read_side(bus: RunningBus, path: str, org: str = PARTNER) -> tuple[int, Any]:
    return _get(f"http://127.0.0.1:{bus.referrals_http_port}{path}", f"dev-{org}")


@pytest.fixture(scope="module")
def inbox_url(bus: RunningBus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The inbox (`python -m services.inbox`, through the composition root so that its Kafka requests are
    recorded for the ACL test, with the SDK's signing disabled) on a free port, pointed at the bus's
    read side and broker."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("inbox") / "inbox.log"
    env = {
        **os.environ,
        "CEPBUS_BOOTSTRAP_SERVERS": bus.bootstrap,
        "CEPBUS_INBOX_PORT": str(port),
        "CEPBUS_INBOX_READ_SIDE_URL": f"http://127.0.0.1:{bus.referrals_http_port}",
        "CEPBUS_LOG_FORMAT": "json",
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _NO_SDK_SIGNING],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _get(f"{url}/readyz")[0] != 200:  # up, and the router's read side answers it
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the inbox never became ready"
            time.sleep(0.25)
        yield url
    finally:
        stop_process(process, log_path)


def demo_referral(recipient: str, days_ago: int) -> ReferralRequested:
    """A referral from the regional operator to a local partner, dated in the past, as the demo's
    backlog (`cepbus_app/demo/referrals.py`)."""
    run = uuid.uuid4().hex[:8]
    person = f"p-inbox-{run}"
    return ReferralRequested(
        envelope=new_envelope(
            ReferralRequested,
            producer_org_id=OPERATOR,
            person_pseudonym=person,
            event_id=derived_event_id(f"inbox-test/{run}", recipient),
            correlation_id=f"inbox-test-{run}-{person}",
            occurred_at=datetime.now(UTC) - timedelta(days=days_ago),
        ),
        referral_id=str(derived_event_id(f"inbox-test/{run}", f"{recipient}/referral")),
        requester_org_id=OPERATOR,
        recipient_org_id=recipient,
        recipient_kind=load_directory().get(recipient).kind,
        region_code="76",
        reason="orientation vers un partenaire local du CEP",
        consent_to_share=False,
    )


def wait_tracked(bus: RunningBus, referral: ReferralRequested, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while read_side(bus, f"/referrals/{referral.referral_id}", referral.recipient_org_id)[0] != 200:
        assert time.monotonic() < deadline, f"the router never tracked {referral.referral_id}"
        time.sleep(0.25)


def key_file(org: str, folder: Path) -> Path:
    """The organisation's PKCS#8 PEM file, as `cep-bus keys generate` writes it (here the development
    key the test bus's directory lists)."""
    path = folder / f"{org}.pem"
    path.write_bytes(
        dev_private_key(org).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def verify_history(view: dict[str, Any]) -> None:
    """Rebuild each applied update from the read side, encode it (its statement) and check the signature
    the router kept with the directory key: the browser's signatures stand on their own, without
    trusting the router or the inbox."""
    record = view["referral"]
    [key] = load_directory().keys_of(PARTNER)
    for entry in view["history"]:
        update = ReferralStatusChanged(
            envelope=Envelope(
                event_id=uuid.UUID(entry["event_id"]),
                event_type=ReferralStatusChanged.avro_name,
                occurred_at=datetime(1970, 1, 1, tzinfo=UTC)
                + timedelta(milliseconds=entry["occurred_at_ms"]),
                producer_org_id=entry["actor_org_id"],
                correlation_id=record["correlation_id"],
                person_pseudonym=record["person_pseudonym"],
                causation_id=record["request_event_id"],
            ),
            referral_id=record["referral_id"],
            status=ReferralStatus(entry["status"]),
            actor_org_id=entry["actor_org_id"],
            reason_code=entry["reason_code"],
            note=entry["note"],
        )
        signed = StatementSignature(entry["key_id"], bytes.fromhex(entry["signature_hex"]))
        author = authorship().verify(codec.encode(update), signed.header())
        assert (author.org_id, author.key_id) == (PARTNER, key.key_id), entry


def posted_signature(request: Any) -> StatementSignature | None:
    """The statement signature a page posted (`POST .../sign/<event id>`), if `request` is one."""
    if request.method != "POST" or "/sign/" not in request.url:
        return None
    form = urllib.parse.parse_qs(request.post_data or "")
    return StatementSignature(form["key_id"][0], base64.b64decode(form["signature"][0]))


def status_messages(bus: RunningBus, event_ids: set[str], timeout_s: float = 30.0) -> dict[str, Any]:
    """The messages on `cep.referral.status` carrying these updates, by event id (Kafka records)."""
    consumer = KafkaConsumer(bootstrap_servers=bus.broker.bootstrap_list, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(REFERRAL_STATUS.name, p)
            for p in consumer.partitions_for_topic(REFERRAL_STATUS.name) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: dict[str, Any] = {}
        deadline = time.monotonic() + timeout_s
        while set(found) != event_ids and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    try:
                        event = codec.decode(record.value)
                    except codec.DecodeError:  # another test's poison message
                        continue
                    if str(event.envelope.event_id) in event_ids:
                        found[str(event.envelope.event_id)] = record
        return found
    finally:
        consumer.close()


def test_a_partner_acknowledges_accepts_and_books_in_the_browser(
    bus: RunningBus, inbox_url: str, tmp_path: Path
) -> None:
    shots = artifacts_dir("inbox", tmp_path)
    referral, elsewhere = demo_referral(PARTNER, days_ago=1), demo_referral(ELSEWHERE, days_ago=3)
    with bus.publisher() as publisher:
        publisher.publish_many([referral, elsewhere])
    wait_tracked(bus, referral)
    wait_tracked(bus, elsewhere)
    problems: list[str] = []
    with chromium() as browser:
        context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
        from playwright.sync_api import expect

        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        posted: list[StatementSignature] = []  # what the browser signed and posted, step by step

        def keep_signature(request: Any) -> None:
            signed = posted_signature(request)
            if signed is not None:
                posted.append(signed)

        page.on("request", keep_signature)

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        # log in with the organisation's read-side token (development: dev-<org>)
        page.goto(f"{inbox_url}/login")
        shot("01-connexion")
        page.get_by_label("Identifiant de l'organisation").fill(PARTNER)
        page.get_by_label("Jeton d'accès").fill(f"dev-{PARTNER}")
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url(f"{inbox_url}/referrals")
        link = page.get_by_role("link", name=referral.referral_id)
        assert link.is_visible() and page.get_by_text(elsewhere.referral_id).count() == 0
        assert "Accusé de réception au plus tard le" in page.inner_text("main")  # its deadline
        shot("02-orientations")

        # load a key that is not the organisation's: the page says so; then the right one
        page.get_by_role("link", name="Clé de signature").click()
        page.get_by_label("Fichier de clé privée (PEM, PKCS#8)").set_input_files(key_file(OPERATOR, tmp_path))
        page.get_by_role("button", name="Charger la clé dans ce navigateur").click()
        expect(page.locator("#key-current")).to_contain_text("n'est pas une clé de")
        shot("03-mauvaise-cle")
        page.get_by_label("Fichier de clé privée (PEM, PKCS#8)").set_input_files(key_file(PARTNER, tmp_path))
        page.get_by_role("button", name="Charger la clé dans ce navigateur").click()
        expect(page.locator("#key-current")).to_contain_text("conforme à l'annuaire")
        shot("04-cle")

        page.get_by_role("link", name="Orientations ouvertes").click()
        page.get_by_role("link", name=referral.referral_id).click()
        assert page.locator("#status").get_attribute("data-status") == "requested"
        shot("05-orientation")

        for n, (action, reached) in enumerate(
            [
                ("Accuser réception", "received"),
                ("Accepter", "accepted"),
                ("Rendez-vous fixé", "appointment_booked"),
            ]
        ):
            # offered once the previous step is applied (the page reloads itself while it waits)
            page.get_by_role("button", name=action, exact=True).click(timeout=APPLY_TIMEOUT_MS)
            page.wait_for_url("**/sign/**")
            expect(page.locator("#key-status")).to_contain_text("prête")  # (the CSP forbids eval)
            signed = page.inner_text("#signed-fields")
            assert referral.referral_id in signed and reached in signed and PARTNER in signed
            shot(f"{6 + 2 * n:02d}-signer-{reached}")
            page.get_by_role("button", name="Signer et envoyer").click()
            page.wait_for_selector(f'#status[data-status="{reached}"]', timeout=APPLY_TIMEOUT_MS)
            shot(f"{7 + 2 * n:02d}-appliquee-{reached}")
        assert "Historique signé" in page.inner_text("main")

        assert problems == []
        # another organisation's referral, by its id: refused
        answer = page.goto(f"{inbox_url}/referrals/{elsewhere.referral_id}")
        assert answer is not None and answer.status == 404
        assert "Orientation introuvable" in page.inner_text("main")
        shot("12-autre-organisation")
        context.close()

    # the router applied the browser's signed updates; the ledger holds its applied verdicts
    code, view = read_side(bus, f"/referrals/{referral.referral_id}")
    assert code == 200 and view["referral"]["status"] == "appointment_booked"
    history = view["history"]
    assert [h["status"] for h in history] == ["received", "accepted", "appointment_booked"]
    assert all(h["signer_org_id"] == PARTNER and len(h["signature_hex"]) == 128 for h in history)
    verify_history(view)
    # the signatures the router kept are the ones the browser posted, and each message carried its own
    assert [(h["key_id"], h["signature_hex"]) for h in history] == [
        (s.key_id, s.signature.hex()) for s in posted
    ]
    messages = status_messages(bus, {h["event_id"] for h in history})
    for entry, signed in zip(history, posted, strict=True):
        headers = dict(messages[entry["event_id"]].headers)
        assert headers[SIGNATURE_HEADER] == signed.header(), entry["status"]
    assert wait_for_applied_verdicts(bus, {h["event_id"] for h in history}) == set()
    assert (
        read_side(bus, f"/referrals/{elsewhere.referral_id}", ELSEWHERE)[1]["referral"]["status"]
        == "requested"
    )
