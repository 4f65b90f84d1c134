"""The inbox's security claims, each played as an attack: a bad token does not log in, another
organisation's referral is refused, a forged or misplaced signature is never published, a form posted
from elsewhere (CSRF) or a forged session cookie does nothing."""

from __future__ import annotations

import base64
import re

import pytest

from tests.unit.inbox.harness import (
    OTHER,
    PARTNER,
    REQUESTER,
    Harness,
    form_token,
    log_in,
    prepare,
    sign,
    signature_for,
    take_step,
)


@pytest.mark.parametrize(
    "token",
    [
        "dev-apec-r11",  # a real token of another organisation
        "dev-transitions-pro-r1",  # almost
        "not-a-token",
        "x" * 600,  # too long for the form
    ],
)
def test_a_login_with_a_token_the_read_side_refuses_opens_no_session(harness: Harness, token: str) -> None:
    harness.refer()
    inbox = harness.inbox()
    answer = log_in(inbox, PARTNER, token)
    assert answer.status_code in (401, 422) and "cepbus-inbox" not in inbox.cookies
    assert inbox.get("/referrals").url.path == "/login"


def test_a_login_for_an_organisation_outside_the_directory_is_refused(harness: Harness) -> None:
    inbox = harness.inbox()
    assert log_in(inbox, "nobody-r11", "dev-nobody-r11").status_code == 401
    assert harness.read_side.calls == []  # refused before asking the read side


def test_the_session_cookie_is_httponly_strict_and_the_token_stays_server_side(harness: Harness) -> None:
    inbox = harness.inbox()
    answer = inbox.post(
        "/login", data={"org_id": PARTNER, "token": f"dev-{PARTNER}", "csrf": ""}, follow_redirects=False
    )
    assert answer.status_code == 403  # no log-in form token
    form = inbox.get("/login")
    answer = inbox.post(
        "/login",
        data={"org_id": PARTNER, "token": f"dev-{PARTNER}", "csrf": form_token(form.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("cepbus-inbox="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert f"dev-{PARTNER}" not in cookie and f"dev-{PARTNER}" not in inbox.get("/referrals").text


def test_a_forged_login_form_posted_from_another_site_is_refused(harness: Harness) -> None:
    """Login CSRF: the attacker's page posts its own credentials with a token of its own session."""
    attacker = harness.inbox()
    their_token = form_token(attacker.get("/login").text)  # valid only with the attacker's nonce cookie
    victim = harness.inbox()
    answer = victim.post("/login", data={"org_id": OTHER, "token": f"dev-{OTHER}", "csrf": their_token})
    assert answer.status_code == 403 and victim.get("/referrals").url.path == "/login"


def test_another_organisations_referral_is_refused_read_and_write(harness: Harness) -> None:
    theirs = harness.refer(recipient=OTHER)
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    page = inbox.get(f"/referrals/{theirs.referral_id}")
    assert page.status_code == 404 and theirs.envelope.person_pseudonym not in page.text
    token = form_token(inbox.get("/referrals").text)
    answer = inbox.post(f"/referrals/{theirs.referral_id}/steps", data={"status": "received", "csrf": token})
    assert answer.status_code == 404
    assert harness.publisher.published == [] and harness.status(theirs.referral_id) == "requested"
    # it is the read side that said no: asked with the partner's own token
    assert (f"/referrals/{theirs.referral_id}", f"dev-{PARTNER}") in harness.read_side.calls


def test_a_draft_of_another_session_cannot_be_signed_here(harness: Harness) -> None:
    request = harness.refer(recipient=PARTNER)
    mine, theirs = harness.inbox(), harness.inbox()
    log_in(mine, PARTNER)
    log_in(theirs, OTHER)
    sign_page = prepare(mine, request.referral_id, "received")
    signature, _ = signature_for(sign_page.text, PARTNER)
    token = form_token(theirs.get("/referrals").text)
    answer = theirs.post(str(sign_page.url), data={**signature, "csrf": token})
    assert answer.status_code == 404 and harness.publisher.published == []


ZEROS = base64.b64encode(b"\0" * 64).decode()


def _other_key_id(page: str) -> dict[str, str]:
    """Another organisation's signature, claimed as the partner's key."""
    form, _ = signature_for(page, OTHER)
    return {**form, "key_id": signature_for(page, PARTNER)[0]["key_id"]}


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        # another organisation's key, under its own key id: a real signature, but not the partner's word
        (lambda page: signature_for(page, OTHER)[0], "misattributed"),
        (lambda page: signature_for(page, REQUESTER)[0], "misattributed"),
        (_other_key_id, "bad_signature"),
        # the partner's key over other bytes than the draft's (what another page would have shown)
        (lambda page: signature_for(page, PARTNER, status="accepted")[0], "bad_signature"),
        (lambda page: signature_for(page, PARTNER, note="autre chose")[0], "bad_signature"),
        (lambda page: {**signature_for(page, PARTNER)[0], "key_id": "0123456789abcdef"}, "unknown_key"),
        (lambda page: {**signature_for(page, PARTNER)[0], "signature": ZEROS}, "bad_signature"),
        (lambda page: {**signature_for(page, PARTNER)[0], "key_id": "not-a-key-id"}, "malformed_signature"),
        (lambda page: {**signature_for(page, PARTNER)[0], "key_id": ""}, "malformed_signature"),
        (lambda page: {"signature": "not base64!", "key_id": "0" * 16}, "malformed_signature"),
        (lambda page: {"signature": ""}, "malformed_signature"),
        (lambda page: {"signature": base64.b64encode(b"short").decode()}, "malformed_signature"),
    ],
    ids=[
        "other-org",
        "requester",
        "other-key-as-mine",
        "other-status",
        "other-note",
        "unknown-key",
        "zeros",
        "bad-key-id",
        "no-key-id",
        "not-base64",
        "empty",
        "short",
    ],
)
def test_an_update_without_a_valid_signature_is_never_published(
    harness: Harness, forge: object, reason: str
) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    sign_page = prepare(inbox, request.referral_id, "received")
    form = forge(sign_page.text)  # type: ignore[operator]
    answer = inbox.post(str(sign_page.url), data={**form, "csrf": form_token(sign_page.text)})
    assert answer.status_code == 400 and f"({reason})" in answer.text and "a été envoyé" in answer.text
    assert harness.publisher.published == [] and harness.status(request.referral_id) == "requested"
    # the draft is still there: signed with the right key, it goes
    assert sign(inbox, sign_page, PARTNER).status_code == 200
    assert harness.status(request.referral_id) == "received"


def test_posts_without_the_sessions_form_token_are_refused(harness: Harness) -> None:
    request = harness.refer()
    inbox, other = harness.inbox(), harness.inbox()
    log_in(inbox, PARTNER)
    log_in(other, PARTNER)  # the same organisation in another session: its token is not this one's
    foreign = form_token(other.get("/referrals").text)
    for csrf in ("", foreign, "0" * 64):
        answer = inbox.post(
            f"/referrals/{request.referral_id}/steps", data={"status": "received", "csrf": csrf}
        )
        assert answer.status_code == 403
    sign_page = prepare(inbox, request.referral_id, "received")
    signature, _ = signature_for(sign_page.text, PARTNER)
    for csrf in ("", foreign):
        assert inbox.post(str(sign_page.url), data={**signature, "csrf": csrf}).status_code == 403
    assert inbox.post("/logout", data={"csrf": foreign}).status_code == 403
    assert inbox.get("/referrals").url.path == "/referrals"  # still logged in
    assert harness.publisher.published == []


def test_a_post_from_another_origin_is_refused_even_with_the_form_token(harness: Harness) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    token = form_token(inbox.get(f"/referrals/{request.referral_id}").text)
    answer = inbox.post(
        f"/referrals/{request.referral_id}/steps",
        data={"status": "received", "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403 and harness.publisher.published == []


def test_a_forged_or_closed_session_cookie_is_no_session(harness: Harness) -> None:
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    value = inbox.cookies["cepbus-inbox"]
    sid, mac = value.rsplit(".", 1)
    for forged in (f"{sid}.{'0' * len(mac)}", f"x{sid}.{mac}", sid, ""):
        other = harness.inbox()
        other.cookies.set("cepbus-inbox", forged)
        assert other.get("/referrals").url.path == "/login"
    assert inbox.post("/logout", data={"csrf": form_token(inbox.get("/referrals").text)}).url.path == "/login"
    replay = harness.inbox()
    replay.cookies.set("cepbus-inbox", value)  # the cookie of a closed session
    assert replay.get("/referrals").url.path == "/login"


def test_pages_load_nothing_from_outside_and_run_no_inline_script(harness: Harness) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    sign_page = prepare(inbox, request.referral_id, "received")
    for page in (inbox.get("/login"), inbox.get("/referrals"), sign_page, inbox.get("/key")):
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert not re.search(r"""(src|href)=["'](https?:)?//""", page.text)
        assert not re.search(r"<script(?![^>]*(type=\"application/json\"|src=))", page.text)
    take_step(inbox, request.referral_id, "received", PARTNER)  # and the pages still work
    assert harness.status(request.referral_id) == "received"
