"""Logging in with the organisation's read-side token, and out.

The log-in form has no session to key its form token with: a short cookie carries a nonce, and the
form's token is the nonce's MAC (`Sessions.login_nonce`), so a log-in form posted from another site
(login CSRF) is refused. The read side decides whether the token is the organisation's. Failed log-ins
slow down and then lock, per client address and per organisation, before any token is checked
(`services/inbox/throttle.py`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from cepbus.runtime.logs import get_logger
from services.inbox.container import Inbox
from services.inbox.metrics import LOGIN_REFUSED, LOGINS
from services.inbox.pages.answers import render, to_login
from services.inbox.pages.dependencies import Guarded, InboxDep, MaybeSession, same_origin
from services.inbox.readside import Unauthorized, Unavailable
from services.inbox.throttle import LOCKED, Refusal

LOGIN_COOKIE = "cepbus-inbox-login"

log = get_logger(service="inbox")
router = APIRouter()


@router.get("/", include_in_schema=False)
def root(session: MaybeSession) -> Response:
    return RedirectResponse("/referrals" if session else "/login", status_code=303)


def login_page(inbox: Inbox, request: Request, status_code: int = 200, error: str | None = None) -> Response:
    """The form, with a fresh nonce cookie and the form token made from it."""
    nonce, token = inbox.sessions.login_nonce()
    response = render(inbox, request, "login.html", None, status_code, login_token=token, error=error)
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=900, httponly=True, samesite="strict", secure=inbox.secure
    )
    return response


def client_address(request: Request, header: str | None) -> str:
    """Whom a log-in attempt comes from: the connection's peer, or behind a trusted reverse proxy the
    last address of the header it writes (`CEPBUS_INBOX_CLIENT_ADDRESS_HEADER`; the addresses before it
    are the client's own say)."""
    if header:
        forwarded = request.headers.get(header, "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded[:64]
    return request.client.host if request.client else "unknown"


def held_back(inbox: Inbox, request: Request, held: Refusal) -> Response:
    """The log-in page again, 429 with `Retry-After`, saying how long to wait."""
    LOGIN_REFUSED.labels(held.reason).inc()
    wait = _duration(held.retry_after_s)
    if held.reason == LOCKED:
        text = (
            "Trop de tentatives de connexion ont échoué depuis cette adresse ou pour cette organisation : "
            f"la connexion est bloquée pendant {wait}. Réessayez ensuite, ou demandez un nouveau jeton "
            "d'accès si vous l'avez perdu."
        )
    else:
        text = f"Trop de tentatives de connexion ont échoué : patientez {wait} avant de réessayer."
    response = login_page(inbox, request, 429, text)
    response.headers["Retry-After"] = str(held.retry_after_s)
    return response


def _duration(seconds: int) -> str:
    """A wait in French words: "45 secondes", "15 minutes"."""
    if seconds < 120:
        return f"{seconds} seconde{'s' if seconds > 1 else ''}"
    return f"{-(-seconds // 60)} minutes"


@router.get("/login")
def login_form(request: Request, inbox: InboxDep, session: MaybeSession) -> Response:
    if session is not None:
        return RedirectResponse("/referrals", status_code=303)
    return login_page(inbox, request)


@router.post("/login")
def login(
    request: Request,
    inbox: InboxDep,
    org_id: Annotated[str, Form(max_length=128)] = "",
    token: Annotated[str, Form(max_length=512)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    if not same_origin(request) or not inbox.sessions.login_token_valid(
        request.cookies.get(LOGIN_COOKIE), csrf
    ):
        LOGINS.labels("csrf").inc()
        return login_page(inbox, request, 403, "Formulaire expiré ou venu d'ailleurs : recommencez.")
    org_id = org_id.strip()
    address = client_address(request, inbox.settings.client_address_header)
    keys = inbox.throttle.keys(address, org_id if org_id in inbox.directory else None)
    held = inbox.throttle.check(keys)
    if held is not None:  # before the token is looked at: the answer says nothing of it
        return held_back(inbox, request, held)
    refused = "Organisation ou jeton d'accès refusé."
    if org_id not in inbox.directory or not token:
        LOGINS.labels("refused").inc()
        inbox.throttle.failed(keys)
        return login_page(inbox, request, 401, refused)
    try:
        inbox.read_side.open_referrals(org_id, token)
    except Unauthorized:
        LOGINS.labels("refused").inc()
        inbox.throttle.failed(keys)
        log.info("inbox_login_refused", org_id=org_id)
        return login_page(inbox, request, 401, refused)
    except Unavailable as exc:
        LOGINS.labels("unavailable").inc()
        log.warning("inbox_read_side_unavailable", error=str(exc))
        return login_page(
            inbox, request, 503, "Le suivi des orientations ne répond pas : réessayez plus tard."
        )
    LOGINS.labels("accepted").inc()
    inbox.throttle.succeeded(address)
    _, cookie = inbox.sessions.open(org_id, token)
    log.info("inbox_login", org_id=org_id)
    response = RedirectResponse("/referrals", status_code=303)
    response.set_cookie(
        inbox.cookie_name,
        cookie,
        max_age=int(inbox.settings.session_max_s),
        httponly=True,
        samesite="strict",
        secure=inbox.secure,
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(visit: Guarded) -> Response:
    inbox = visit.inbox
    inbox.sessions.close(visit.session)
    response = to_login()
    response.delete_cookie(inbox.cookie_name, path="/", secure=inbox.secure, samesite="strict")
    return response
