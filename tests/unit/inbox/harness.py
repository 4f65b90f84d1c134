"""The inbox tests' harness: the inbox against the router's own read side and lifecycle, in process.
The read side is `build_read_side` over a real referral store (reached through its test client instead
of HTTP), and the publisher hands each update to `ReferralLifecycle.on_status`, as the router would
after Kafka. So what the inbox offers, refuses and publishes is judged by the router's real code. The
helpers below do what a user's browser does (the page's script, for the signature)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cepbus.contract.models import Event, ReferralRequested, ReferralStatusChanged
from cepbus.contract.signatures import canonical_status_bytes
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.trust.development import dev_private_key
from cepbus.trust.settings import TrustSettings
from services.inbox.app import build_app
from services.inbox.readside import ReadSide
from services.inbox.settings import InboxSettings
from services.inbox.steps import update_from_fields
from services.router.referrals.auth import TokenBook
from services.router.referrals.handlers import ReferralLifecycle, UpdateRefused
from services.router.referrals.http import build_read_side
from services.router.referrals.store import ReferralStore
from tests.support.factories import MONDAY, referral
from tests.support.fakes import MovableClock

REQUESTER, PARTNER, OTHER = "cep-r11", "transitions-pro-r11", "apec-r11"


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
    """Records what the inbox publishes and lets the router's lifecycle judge it (`apply=False`: the
    bus is slow, nothing reaches the router)."""

    lifecycle: ReferralLifecycle
    apply: bool = True
    published: list[ReferralStatusChanged] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def publish(self, event: Event) -> Any:
        assert isinstance(event, ReferralStatusChanged)
        self.published.append(event)
        if self.apply:
            try:
                self.lifecycle.on_status(event)
            except UpdateRefused as refusal:
                self.refused.append(refusal.reason)
        return None


@dataclass
class Harness:
    store: ReferralStore
    lifecycle: ReferralLifecycle
    read_side: ClientReadSide
    publisher: RouterPublisher
    settings: InboxSettings

    def inbox(self, **overrides: Any) -> TestClient:
        app = build_app(
            overrides.pop("settings", self.settings),
            trust=TrustSettings(env="development"),
            directory=load_directory(),
            read_side=self.read_side,
            publisher=self.publisher,
            secret=b"k" * 32,
            **overrides,
        )
        return TestClient(app)

    def refer(self, requester: str = REQUESTER, recipient: str = PARTNER) -> ReferralRequested:
        request = referral(requester=requester, recipient=recipient)
        self.lifecycle.on_requested(request)
        return request

    def status(self, referral_id: str) -> str:
        record = self.store.get(referral_id)
        assert record is not None
        return record.state.value


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    store = ReferralStore(f"sqlite:///{tmp_path / 'referrals.db'}")
    directory = load_directory()
    lifecycle = ReferralLifecycle(store, directory, load_reference(), clock=MovableClock(MONDAY))
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


def signature_for(sign_page: str, key_org: str) -> tuple[str, ReferralStatusChanged]:
    """What the page's script does: rebuild the update from the page's fields, sign its canonical
    bytes with the organisation's key. Returns (base64 signature, the update as the page read it)."""
    import base64

    fields = update_from_fields(page_data(sign_page)["update"])
    signature = dev_private_key(key_org).sign(canonical_status_bytes(fields))
    return base64.b64encode(signature).decode(), fields


def sign(client: TestClient, sign_page: httpx.Response, key_org: str) -> httpx.Response:
    signature, _ = signature_for(sign_page.text, key_org)
    return client.post(str(sign_page.url), data={"signature": signature, "csrf": form_token(sign_page.text)})


def take_step(
    client: TestClient, referral_id: str, status: str, org: str, reason_code: str = "", note: str = ""
) -> httpx.Response:
    """Prepare, sign with `org`'s key and send one step; returns the answer to the signature."""
    sign_page = prepare(client, referral_id, status, reason_code, note)
    assert sign_page.status_code == 200, sign_page.text
    return sign(client, sign_page, org)
