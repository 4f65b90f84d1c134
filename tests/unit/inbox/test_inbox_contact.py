"""The person's contact on the inbox's side of the server (issue #24): the referral page gives its
recipient the box the requester sealed, as data for the page's script (`#contact-data`, a JSON element,
which the CSP lets no one execute), with what the box is bound to; the box opens with the recipient's
key to the contact, and no page the inbox serves holds any of the contact's values, in clear, HTML- or
JSON-escaped. The requester, and a referral without a contact, get no box. No endpoint of the inbox
takes a contact field: it has no way to receive the clear contact."""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from cepbus.contract.contact import ReferralContact, open_contact
from cepbus.contract.models import SealedContact
from cepbus.reference.directory import load_directory
from cepbus.trust.development import dev_encryption_key
from tests.unit.inbox.harness import (
    CONTACT,
    PARTNER,
    REQUESTER,
    Harness,
    form_token,
    log_in,
    prepare,
)

CONTACT_FIELDS = set(ReferralContact.model_fields)


def contact_data(page: str) -> dict[str, Any] | None:
    found = re.search(r'<script type="application/json" id="contact-data">(.*?)</script>', page, re.S)
    return None if found is None else json.loads(found.group(1))  # type: ignore[no-any-return]


def spellings(value: str) -> set[str]:
    """A value as a page could hold it: as is, HTML-escaped, JSON-escaped (ASCII or not), and each of
    its lines (a multi-line text could be split)."""
    forms = {value, html.escape(value), html.escape(value, quote=False)}
    forms |= {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= {line for line in value.splitlines() if len(line) >= 6}
    return forms


def leaked(text: str) -> list[str]:
    """The contact's fields some spelling of which is in `text`."""
    values = {name: value for name, value in CONTACT.model_dump(mode="json").items() if value}
    values.pop("contact_preference")  # a word of the contract ("referent"), not the person's
    return sorted(name for name, value in values.items() if any(form in text for form in spellings(value)))


def test_the_recipients_page_carries_the_box_as_data_and_none_of_the_contact(harness: Harness) -> None:
    request = harness.refer_with_contact()
    sealed = request.sealed_contact
    assert sealed is not None
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    page = inbox.get(f"/referrals/{request.referral_id}")
    assert page.status_code == 200
    assert leaked(page.text) == []
    data = contact_data(page.text)
    assert data == {
        "referral_id": request.referral_id,
        "requester_org_id": REQUESTER,
        "recipient_org_id": PARTNER,
        "key_id": sealed.recipient_key_id,
        "ciphertext_b64": base64.b64encode(sealed.ciphertext).decode(),
        "ciphertext_sha256_hex": sealed.ciphertext_sha256.hex(),
        "key_page": f"/key?next=/referrals/{request.referral_id}",
    }
    # what the page gives its script opens, with the recipient's key, to the contact: nothing else
    # would, since the HPKE `info` binds the box to exactly these ids
    box = SealedContact(
        recipient_key_id=data["key_id"],
        ciphertext=base64.b64decode(data["ciphertext_b64"]),
        ciphertext_sha256=bytes.fromhex(data["ciphertext_sha256_hex"]),
    )
    opened = open_contact(
        box,
        dev_encryption_key(PARTNER),
        data["key_id"],
        referral_id=data["referral_id"],
        requester_org_id=data["requester_org_id"],
        recipient_org_id=data["recipient_org_id"],
    )
    assert opened == CONTACT
    assert leaked(opened.model_dump_json()) != []  # the search finds the contact where it is
    # the box is opened by the page's module, the only script besides the page's data
    assert '<script type="module" src="/static/referral.js"></script>' in page.text
    assert "Coordonnées de la personne" in page.text and sealed.recipient_key_id in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"<script(?![^>]*(type=\"application/json\"|src=))", page.text)


def test_the_requester_and_a_referral_without_contact_get_no_box(harness: Harness) -> None:
    request, plain = harness.refer_with_contact(), harness.refer()
    requester, partner = harness.inbox(), harness.inbox()
    log_in(requester, REQUESTER)
    log_in(partner, PARTNER)
    page = requester.get(f"/referrals/{request.referral_id}").text
    assert request.sealed_contact is not None
    assert contact_data(page) is None and "Coordonnées de la personne" not in page
    assert base64.b64encode(request.sealed_contact.ciphertext).decode()[:40] not in page
    assert "/static/referral.js" not in page and leaked(page) == []
    page = partner.get(f"/referrals/{plain.referral_id}").text
    assert contact_data(page) is None and "Aucune coordonnée n'accompagne cette orientation" in page
    assert "/static/referral.js" not in page


def test_no_page_of_the_recipient_holds_the_contact(harness: Harness) -> None:
    request = harness.refer_with_contact()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    sign_page = prepare(inbox, request.referral_id, "received")
    assert sign_page.status_code == 200
    for page in (
        inbox.get("/referrals"),
        inbox.get(f"/referrals/{request.referral_id}"),
        sign_page,
        inbox.get("/key"),
        inbox.get(f"/key?next=/referrals/{request.referral_id}"),
        inbox.get("/export"),  # the boxes, as data for the page's script
        inbox.get("/export.csv"),
    ):
        assert page.status_code == 200 and leaked(page.text) == [], page.url


def test_the_key_page_lists_the_organisations_encryption_keys_from_the_directory(harness: Harness) -> None:
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    page = inbox.get(f"/key?next=/referrals/{harness.refer().referral_id}").text
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', page, re.S)
    assert found is not None
    data = json.loads(found.group(1))
    [key] = load_directory().encryption_keys_of(PARTNER)
    assert data["encryption_keys"] == [{"key_id": key.key_id, "public_key": key.public_key, "valid": True}]
    assert 'id="enc-file"' in page and "Fichier de la clé de chiffrement (PEM, PKCS#8, X25519)" in page
    assert data["next"].startswith("/referrals/")


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """The application's endpoints, those of its included routers too (which FastAPI may keep wrapped,
    each with its `original_router`)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found += api_routes(inner.routes)
    return found


def _parameters(dependant: Dependant) -> set[str]:
    """Every parameter a route reads from a request (path, query, header, cookie, body), its
    dependencies' included."""
    names = {
        param.name
        for params in (
            dependant.path_params,
            dependant.query_params,
            dependant.header_params,
            dependant.cookie_params,
            dependant.body_params,
        )
        for param in params
    }
    for sub in dependant.dependencies:
        names |= _parameters(sub)
    return names


def test_no_endpoint_takes_a_contact_field(harness: Harness) -> None:
    inbox = harness.inbox()
    routes = api_routes(inbox.app.routes)  # type: ignore[attr-defined]
    writes = sorted((method, route.path) for route in routes for method in route.methods if method != "GET")
    # a new endpoint that takes data must be looked at here (and in docs/inbox.md) first
    assert writes == [
        ("POST", "/login"),
        ("POST", "/logout"),
        ("POST", "/referrals/{referral_id}/sign/{event_id}"),
        ("POST", "/referrals/{referral_id}/steps"),
    ]
    for route in routes:
        assert not (_parameters(route.dependant) & CONTACT_FIELDS), route.path
        assert "contact" not in route.path
    # and posting the contact anyway goes nowhere
    request = harness.refer_with_contact()
    log_in(inbox, PARTNER)
    token = form_token(inbox.get(f"/referrals/{request.referral_id}").text)
    clear = {**CONTACT.model_dump(mode="json"), "csrf": token}
    assert inbox.post(f"/referrals/{request.referral_id}", data=clear).status_code == 405
    assert inbox.post(f"/referrals/{request.referral_id}/contact", data=clear).status_code in (404, 405)
