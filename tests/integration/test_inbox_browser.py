"""The partner inbox end to end, in headless Chromium (Debian's, driven by Playwright): a regional
operator refers a person to a local partner as the demo does; the partner's staff log in with the
organisation's read-side token, load its key file into the browser, see the referral with its deadline,
acknowledge it, accept it and book the appointment, each step's statement rebuilt and signed in the
browser (WebCrypto Ed25519); the router applies the signed updates (read side), the ledger keeps its
applied verdicts, and each signature verifies with the directory key over the update's bytes. Another
organisation's referral is refused.

The person's contact (issue #24): an operator's referral carries it sealed by the SDK to the partner's
encryption key in the directory; the partner loads its X25519 key into the browser beside its signing
key, and the referral page shows the contact opened in the browser, while the page the server sent,
every request the browser made to the inbox and the inbox's log hold none of it. Without the key
loaded, or with another one, the page says which key the contact is sealed to. The export: the CSV the
partner downloads from its browser carries that contact, opened there; the server's CSV does not.

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
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from kafka import KafkaConsumer, TopicPartition

from cepbus.contract import codec
from cepbus.contract.contact import ContactPreference, ReferralContact
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
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.sdk.contact import attach_contact
from cepbus.trust.development import dev_encryption_key, dev_private_key
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


@dataclass(frozen=True)
class RunningInbox:
    url: str
    log_path: Path  # everything the process wrote (its JSON log lines, stdout and stderr)


@pytest.fixture(scope="module")
def inbox(bus: RunningBus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningInbox]:
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
        yield RunningInbox(url, log_path)
    finally:
        stop_process(process, log_path)


@pytest.fixture(scope="module")
def inbox_url(inbox: RunningInbox) -> str:
    return inbox.url


def demo_referral(recipient: str, days_ago: int, consent: bool = False) -> ReferralRequested:
    """A referral from the regional operator to a local partner, dated in the past, as the demo's
    backlog (`cepbus_app/demo/referrals.py`); `consent`: the person agreed to share their contact."""
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
        consent_to_share=consent,
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


def encryption_key_file(org: str, folder: Path) -> Path:
    """The organisation's X25519 encryption key as a PKCS#8 PEM file, as `cep-bus keys generate
    --encryption` writes it (here the development key the test bus's directory lists)."""
    path = folder / f"{org}-encryption.pem"
    path.write_bytes(
        dev_encryption_key(org).private_bytes(
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
        page.get_by_role("link", name="Clés de l'organisation").click()
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


def contact_for(run: str) -> ReferralContact:
    """The person's contact, each field with a token of this run (`run`: 8 digits) that no other text
    of the bus holds, and non-ASCII text (a JSON log or a JSON element would escape it)."""
    return ReferralContact(
        first_name=f"Éloïse pn{run}",
        last_name=f"N'Diaye-Müller nm{run}",
        phone=f"+33 6 {run[:2]} {run[2:4]} {run[4:6]} {run[6:8]}",
        email=f"eloise.{run}@example.org",
        contact_preference=ContactPreference.TELEPHONE,
        availability=f"le mardi après 17 h, av{run}",
        situation=f"projet « métiers du soin » à Rouen, st{run}",
        referent_name=f"Conseillère CEP rn{run}",
        referent_contact=f"conseil-{run}@cep-exemple.fr",
    )


def contact_needles(contact: ReferralContact, run: str) -> dict[str, list[bytes]]:
    """What would betray each field in a text: its value in UTF-8, and its run token in ASCII (which
    survives HTML and JSON escaping)."""
    tokens = {
        "first_name": f"pn{run}",
        "last_name": f"nm{run}",
        "phone": f"{run[:2]} {run[2:4]} {run[4:6]} {run[6:8]}",
        "email": f"eloise.{run}",
        "availability": f"av{run}",
        "situation": f"st{run}",
        "referent_name": f"rn{run}",
        "referent_contact": f"conseil-{run}",
    }
    values = contact.model_dump(mode="json")
    return {name: [str(values[name]).encode(), token.encode()] for name, token in tokens.items()}


def contact_in(data: str | bytes, needles: dict[str, list[bytes]]) -> list[str]:
    """The contact's fields `data` betrays."""
    raw = data.encode() if isinstance(data, str) else data
    return sorted(name for name, forms in needles.items() if any(form in raw for form in forms))


def log_in(page: Any, url: str, org: str = PARTNER) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Identifiant de l'organisation").fill(org)
    page.get_by_label("Jeton d'accès").fill(f"dev-{org}")
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{url}/referrals")


def test_the_partner_reads_the_persons_contact_opened_in_its_browser_and_the_server_never_does(
    bus: RunningBus, inbox: RunningInbox, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    shots = artifacts_dir("inbox", tmp_path)
    run = str(uuid.uuid4().int)[-8:]
    contact = contact_for(run)
    needles = contact_needles(contact, run)
    referral = attach_contact(demo_referral(PARTNER, days_ago=0, consent=True), contact, load_directory())
    sealed = referral.sealed_contact
    assert sealed is not None
    key_id, box_b64 = sealed.recipient_key_id, base64.b64encode(sealed.ciphertext).decode()
    with bus.publisher() as publisher:
        publisher.publish(referral)
    wait_tracked(bus, referral)
    code, view = read_side(bus, f"/referrals/{referral.referral_id}")
    assert code == 200 and view["sealed_contact"]["ciphertext_b64"] == box_b64  # kept for the recipient
    page_url = f"{inbox.url}/referrals/{referral.referral_id}"
    problems: list[str] = []
    sent: list[str] = []  # every request the browsers made to the inbox: method, URL and body

    def watched(context: Any) -> Any:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("request", lambda r: sent.append(f"{r.method} {r.url}\n{r.post_data or ''}"))
        return page

    def shot(page: Any, name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    def load(page: Any, label: str, button: str, path: Path) -> None:
        page.get_by_label(label).set_input_files(path)
        page.get_by_role("button", name=button, exact=True).click()

    signing = ("Fichier de clé privée (PEM, PKCS#8)", "Charger la clé dans ce navigateur")
    encryption = (
        "Fichier de la clé de chiffrement (PEM, PKCS#8, X25519)",
        "Charger la clé de chiffrement dans ce navigateur",
    )
    with chromium() as browser:
        # the partner loads both its keys, then opens the referral: the contact is opened in the browser
        context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
        page = watched(context)
        log_in(page, inbox.url)
        page.get_by_role("link", name="Clés de l'organisation").click()
        load(page, *signing, key_file(PARTNER, tmp_path))
        expect(page.locator("#key-current")).to_contain_text("conforme à l'annuaire")
        load(page, *encryption, encryption_key_file(PARTNER, tmp_path))
        expect(page.locator("#enc-current")).to_contain_text(f"{key_id}, conforme à l'annuaire")
        shot(page, "20-cles-signature-et-chiffrement")
        answer = page.goto(page_url)
        assert answer is not None and answer.status == 200
        served = answer.text()  # the page as the server sent it, before any script ran
        expect(page.locator("#contact-status")).to_contain_text(
            f"déchiffrées dans ce navigateur avec la clé {key_id}"
        )
        fields = page.locator("#contact-fields")
        expect(fields).to_be_visible()
        for name, value in contact.model_dump(mode="json").items():
            shown = "Par téléphone" if name == "contact_preference" else value
            expect(fields.locator(f'dd[data-field="{name}"]')).to_have_text(shown)
        shot(page, "21-coordonnees")
        opened = page.content()
        context.close()

        # a browser without the encryption key: the page says which key the contact is sealed to
        context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
        page = watched(context)
        log_in(page, inbox.url)
        page.goto(page_url)
        status = page.locator("#contact-status")
        expect(status).to_contain_text(
            f"Coordonnées chiffrées pour la clé {key_id} : chargez la clé de chiffrement de l'organisation"
        )
        expect(page.locator("#contact-fields")).to_be_hidden()
        shot(page, "22-coordonnees-sans-cle")
        # another organisation's encryption key: refused by the key page, and it opens nothing
        page.get_by_role("link", name="Charger la clé de chiffrement").click()
        page.wait_for_url(re.compile(r"/key\?next=/referrals/"))
        load(page, *encryption, encryption_key_file(ELSEWHERE, tmp_path))
        expect(page.locator("#enc-current")).to_contain_text(f"n'est pas une clé de chiffrement de {PARTNER}")
        shot(page, "23-mauvaise-cle-de-chiffrement")
        page.goto(page_url)
        expect(status).to_contain_text(f"Coordonnées chiffrées pour la clé {key_id} : chargez la clé")
        expect(status).to_contain_text("ce navigateur a la clé")
        shot(page, "24-coordonnees-autre-cle")
        # the right one, and back to the referral from the key page
        page.get_by_role("link", name="Charger la clé de chiffrement").click()
        load(page, *encryption, encryption_key_file(PARTNER, tmp_path))
        expect(page.locator("#enc-current")).to_contain_text("conforme à l'annuaire")
        page.get_by_role("link", name="Revenir à l'orientation").click()
        expect(page.locator('#contact-fields dd[data-field="last_name"]')).to_have_text(contact.last_name)
        context.close()
    assert problems == []

    # the server sent the box and none of the contact; the search finds it where it is (the page once
    # its script ran)
    assert box_b64 in served and key_id in served
    assert contact_in(served, needles) == []
    assert contact_in(opened, needles) == sorted(needles)
    # the browsers sent the inbox none of it (their log-in forms and key-page visits included)
    assert any(line.startswith("POST ") and "token=" in line for line in sent)
    assert contact_in("\n".join(sent), needles) == []
    # nor did the inbox write any of it (its log: JSON lines, where non-ASCII text is escaped)
    log = inbox.log_path.read_bytes()
    assert b"inbox_starting" in log
    assert contact_in(log, needles) == []
    # nor did the bus's services (the router that served the box to the inbox, among them)
    for service, process in bus.supervisor.processes.items():
        assert contact_in(process.log_path.read_bytes(), needles) == [], service


def test_the_partner_exports_its_referrals_with_the_contacts_opened_in_its_browser(
    bus: RunningBus, inbox: RunningInbox, tmp_path: Path
) -> None:
    """Issue #24, the export: on the session bus, the partner loads its encryption key and clicks
    « Exporter (CSV) »: the page fetches the server's CSV (every referral of the partner from the router's
    read side, without any contact) and downloads, from the browser, the same lines with the contact
    columns filled for the referral whose contact the operator sealed to the partner, opened in the
    browser; the server's CSV, the browser's requests and the inbox's log hold none of the contact."""
    import csv
    import io

    from playwright.sync_api import expect

    shots = artifacts_dir("inbox", tmp_path)
    run = str(uuid.uuid4().int)[-8:]
    contact = contact_for(run)
    needles = contact_needles(contact, run)
    referral = attach_contact(demo_referral(PARTNER, days_ago=2, consent=True), contact, load_directory())
    plain = demo_referral(PARTNER, days_ago=1)
    with bus.publisher() as publisher:
        publisher.publish_many([referral, plain])
    wait_tracked(bus, referral)
    wait_tracked(bus, plain)
    problems: list[str] = []
    sent: list[str] = []

    def rows(text: str) -> list[list[str]]:
        return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=";"))

    with chromium() as browser:
        context = browser.new_context(
            locale="fr-FR", viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("request", lambda r: sent.append(f"{r.method} {r.url}\n{r.post_data or ''}"))
        log_in(page, inbox.url)
        page.get_by_role("link", name="Clés de l'organisation").click()
        page.get_by_label("Fichier de la clé de chiffrement (PEM, PKCS#8, X25519)").set_input_files(
            encryption_key_file(PARTNER, tmp_path)
        )
        page.get_by_role(
            "button", name="Charger la clé de chiffrement dans ce navigateur", exact=True
        ).click()
        expect(page.locator("#enc-current")).to_contain_text("conforme à l'annuaire")
        page.get_by_role("link", name="Exporter", exact=True).click()
        page.wait_for_url(f"{inbox.url}/export")
        status = page.locator("#export-status")
        expect(status).to_contain_text("seront déchiffrées dans ce navigateur et ajoutées au fichier")
        with (
            page.expect_response(f"{inbox.url}/export.csv") as served,
            page.expect_download() as got,
        ):
            page.get_by_role("button", name="Exporter (CSV)").click()
        expect(status).to_contain_text("coordonnées déchiffrées dans ce navigateur pour")
        page.screenshot(path=str(shots / "28-export-sur-le-bus.png"), full_page=True)
        downloaded = Path(got.value.path()).read_bytes()
        server_body = served.value.body()
        # the server's file as the server sends it (the context's session cookie): UTF-8 with its BOM
        raw = context.request.get(f"{inbox.url}/export.csv")
        assert raw.status == 200 and raw.headers["content-type"] == "text/csv; charset=utf-8"
        server_bytes = raw.body()
        context.close()
    assert problems == []

    # the server's CSV: the partner's referrals, none of the contact
    assert server_bytes.startswith(b"\xef\xbb\xbfOrientation;")
    assert contact_in(server_bytes, needles) == [] and contact_in(server_body, needles) == []
    server = rows(server_body.decode())
    header, lines = server[0], {line[0]: line for line in server[1:]}
    assert {referral.referral_id, plain.referral_id} <= set(lines)
    line = dict(zip(header, lines[referral.referral_id], strict=True))
    assert (line["Rôle"], line["Statut"], line["Identifiant du prescripteur"]) == (
        "reçue",
        "Demandée",
        OPERATOR,
    )
    assert line["Région"] == f"{load_reference().region('76').name} (76)"
    # the browser's file: the server's lines, then the contact opened in the browser
    text = downloaded.decode("utf-8")
    assert text.startswith("\ufeff")
    augmented = rows(text)
    width = len(header)
    assert [row[:width] for row in augmented] == server
    opened = {row[0]: dict(zip(augmented[0][width:], row[width:], strict=True)) for row in augmented[1:]}
    assert opened[referral.referral_id] == {
        "Nom": contact.last_name,
        "Prénom": contact.first_name,
        "Téléphone": f"'{contact.phone}",  # "+33 ...", written as text for a spreadsheet
        "Courriel": contact.email,
        "Préférence de contact": "Par téléphone",
        "Disponibilités": contact.availability,
        "Référent": contact.referent_name,
        "Contact du référent": contact.referent_contact,
    }
    assert set(opened[plain.referral_id].values()) == {""}
    # nothing of it went to the inbox, nor into its log
    assert contact_in("\n".join(sent), needles) == []
    assert contact_in(inbox.log_path.read_bytes(), needles) == []
