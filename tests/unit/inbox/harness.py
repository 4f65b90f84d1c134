"""The inbox tests' harness: the inbox against the router's own read side and lifecycle, in process.
The read side is `build_read_side` over a real referral store (reached through its test client instead
of HTTP), and the publisher hands each update to `ReferralLifecycle.on_status`, as the router would
after Kafka. So what the inbox offers, refuses and publishes is judged by the router's real code. The
helpers below do what a user's browser does (the page's script, for the signature)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cepbus.contract import codec
from cepbus.contract.contact import ContactPreference, ReferralContact
from cepbus.contract.models import Event, ReferralRequested, ReferralStatusChanged
from cepbus.contract.statements import StatementSignature
from cepbus.contract.topics import core_topic, topic_for
from cepbus.reference import load_reference
from cepbus.reference.authorship import AuthorshipError
from cepbus.reference.directory import load_directory
from cepbus.runtime.processing import CURRENT_AUTHOR
from cepbus.sdk.contact import attach_contact
from cepbus.sdk.publisher import development_signer
from cepbus.trust.settings import TrustSettings
from services.inbox.app import build_app
from services.inbox.readside import ReadSide
from services.inbox.settings import InboxSettings
from services.inbox.steps import update_from_fields
from services.router.referrals.auth import TokenBook
from services.router.referrals.handlers import ReferralLifecycle, UpdateRefused
from services.router.referrals.http import build_read_side
from services.router.referrals.store import ReferralStore
from tests.conftest import free_port
from tests.support.authorship import Admitted, authorship
from tests.support.factories import MONDAY, referral
from tests.support.fakes import MovableClock

REQUESTER, PARTNER, OTHER = "cep-r11", "transitions-pro-r11", "apec-r11"
#: The person's contact a referral carries sealed to its recipient: every field, non-ASCII text, and
#: characters HTML and JSON escape (what a search of the pages for it must still find).
CONTACT = ReferralContact(
    first_name="Éloïse",
    last_name="N'Diaye-Müller",
    phone="+33 6 12 34 56 78",
    email="eloise.ndiaye@example.org",
    contact_preference=ContactPreference.REFERENT,
    availability="le mardi après 17 h <pas le week-end> & 🚲",
    situation='salariée, projet « métiers du soin »\nsouhaite un "rendez-vous" à Évry',
    referent_name="Conseillère CEP Sud-Essonne",
    referent_contact="conseil-sud@cep-exemple.fr",
)


class ClientReadSide(ReadSide):
    """The inbox's read-side client over the router read side's test client instead of a socket."""

    def __init__(self, client: TestClient) -> None:
        super().__init__("http://read-side.test")
        self.client = client
        self.calls: list[tuple[str, str | None]] = []

    def _get(self, path: str, token: str | None) -> tuple[int, Any]:
        self.calls.append((path, token))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.get(path, headers=headers)
        return response.status_code, response.json()


@dataclass
class RouterPublisher:
    """Records what the inbox publishes, with the signature it publishes it with, and lets the router
    judge it as the bus would: the edge verifies the signature over the update's bytes (a refusal
    there is recorded with its reason, as the runtime dead-letters it), then the lifecycle applies it
    (`apply=False`: the bus is slow, nothing reaches the router until `deliver`)."""

    lifecycle: ReferralLifecycle
    apply: bool = True
    published: list[ReferralStatusChanged] = field(default_factory=list)
    signatures: list[StatementSignature] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def publish(self, event: Event, *, signed: StatementSignature) -> Any:
        assert isinstance(event, ReferralStatusChanged) and isinstance(signed, StatementSignature)
        self.published.append(event)
        self.signatures.append(signed)
        if self.apply:
            self.deliver(len(self.published) - 1)
        return None

    def deliver(self, index: int) -> None:
        """The bus delivers the `index`th update published to the router: the edge, then the handler."""
        update, signed = self.published[index], self.signatures[index]
        try:
            author = authorship().verify(codec.encode(update), signed.header())
            authorship().judge(update, author, core_topic(topic_for(update).name))
        except AuthorshipError as refusal:
            self.refused.append(refusal.reason)
            return
        token = CURRENT_AUTHOR.set(author)
        try:
            self.lifecycle.on_status(update)
        except UpdateRefused as refusal:
            self.refused.append(refusal.reason)
        finally:
            CURRENT_AUTHOR.reset(token)


@dataclass
class Harness:
    store: ReferralStore
    lifecycle: ReferralLifecycle
    read_side: ClientReadSide
    publisher: RouterPublisher
    settings: InboxSettings

    def inbox(self, address: str = "testclient", **overrides: Any) -> TestClient:
        """An inbox and a browser on it, connecting from `address`."""
        app = build_app(
            overrides.pop("settings", self.settings),
            trust=TrustSettings(env="development"),
            directory=load_directory(),
            read_side=self.read_side,
            publisher=overrides.pop("publisher", self.publisher),
            secret=b"k" * 32,
            **overrides,
        )
        return TestClient(app, client=(address, 50000))

    def refer(
        self, requester: str = REQUESTER, recipient: str = PARTNER, at: datetime = MONDAY
    ) -> ReferralRequested:
        """A referral requested at `at` (the requester's claim), received on the lifecycle's clock."""
        request = referral(requester=requester, recipient=recipient, at=at)
        self.lifecycle.on_requested(request)
        return request

    def refer_with_contact(
        self,
        contact: ReferralContact = CONTACT,
        requester: str = REQUESTER,
        recipient: str = PARTNER,
        at: datetime = MONDAY,
    ) -> ReferralRequested:
        """A referral made with the person's consent, carrying `contact` sealed by the requester's SDK to
        the recipient's directory key, as the router receives it."""
        request = referral(requester=requester, recipient=recipient, at=at).model_copy(
            update={"consent_to_share": True}
        )
        sealed = attach_contact(request, contact, load_directory(), at=at)
        self.lifecycle.on_requested(sealed)
        return sealed

    @contextmanager
    def serve(self, **overrides: Any) -> Iterator[str]:
        """An inbox (as `inbox` builds it) served over HTTP on a loopback port, for a real browser (a
        secure context: WebCrypto; the real CSP and cookies); yields its URL."""
        app: FastAPI = self.inbox(**overrides).app  # type: ignore[assignment]
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)  # no signal handlers off the main thread
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the inbox did not start"
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    def status(self, referral_id: str) -> str:
        record = self.store.get(referral_id)
        assert record is not None
        return record.state.value


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    store = ReferralStore(f"sqlite:///{tmp_path / 'referrals.db'}")
    directory = load_directory()
    lifecycle = Admitted(store, directory, load_reference(), clock=MovableClock(MONDAY))
    read_side = ClientReadSide(TestClient(build_read_side(store, TokenBook.load(None, directory.org_ids()))))
    yield Harness(store, lifecycle, read_side, RouterPublisher(lifecycle), InboxSettings())
    store.close()


# -- what a user's browser does ------------------------------------------------------------------


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no form token on the page"
    return found.group(1)


def page_data(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert found, "no page data"
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def log_in(client: TestClient, org: str, token: str | None = None) -> httpx.Response:
    form = client.get("/login")
    return client.post(
        "/login", data={"org_id": org, "token": token or f"dev-{org}", "csrf": form_token(form.text)}
    )


def prepare(
    client: TestClient, referral_id: str, status: str, reason_code: str = "", note: str = ""
) -> httpx.Response:
    """Click a step's button on the referral page (which carries the form token)."""
    page = client.get(f"/referrals/{referral_id}")
    data = {"status": status, "reason_code": reason_code, "note": note, "csrf": form_token(page.text)}
    return client.post(f"/referrals/{referral_id}/steps", data=data)


def browser_signature(fields: dict[str, Any], fingerprint: str, key_org: str) -> StatementSignature:
    """What the page's script computes and signs (static/statement.js), in Python: the update rebuilt
    from the page's fields, its Avro body under the writer schema the page names, signed as a batch of
    one with `key_org`'s key (the development key the packaged directory lists)."""
    body = codec.encode(update_from_fields(fields))[codec.HEADER_LEN :]
    statement = codec.MARKER + bytes.fromhex(fingerprint) + body
    [signed] = development_signer(key_org).sign([statement])
    return signed


def signature_form(signed: StatementSignature) -> dict[str, str]:
    """The signing form's fields as the page posts them: the signature and the key's id."""
    return {"signature": base64.b64encode(signed.signature).decode(), "key_id": signed.key_id}


def signature_for(
    sign_page: str, key_org: str, **changes: Any
) -> tuple[dict[str, str], ReferralStatusChanged]:
    """What the page's script does: rebuild the update from the page's fields (with `changes`, what
    another page would have shown), sign its statement with `key_org`'s key. Returns (the form's
    signature fields, the update as signed)."""
    data = page_data(sign_page)
    fields = {**data["update"], **changes}
    return signature_form(browser_signature(fields, data["fingerprint"], key_org)), update_from_fields(fields)


def sign(client: TestClient, sign_page: httpx.Response, key_org: str) -> httpx.Response:
    form, _ = signature_for(sign_page.text, key_org)
    return client.post(str(sign_page.url), data={**form, "csrf": form_token(sign_page.text)})


def take_step(
    client: TestClient, referral_id: str, status: str, org: str, reason_code: str = "", note: str = ""
) -> httpx.Response:
    """Prepare, sign with `org`'s key and send one step; returns the answer to the signature."""
    sign_page = prepare(client, referral_id, status, reason_code, note)
    assert sign_page.status_code == 200, sign_page.text
    return sign(client, sign_page, org)
