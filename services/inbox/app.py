"""The partner inbox web application (FastAPI, server-rendered Jinja2 pages, one ES module per page).

    GET  /login, POST /login             log in with the organisation's read-side token
    POST /logout
    GET  /referrals                      the organisation's open referrals, with their deadlines
    GET  /referrals/{id}                 one referral: status, deadline, signed history, the steps it may take
    POST /referrals/{id}/steps           prepare the unsigned update of a step (a draft, kept in the session)
    GET  /referrals/{id}/sign/{event}    the page that signs it: the browser recomputes the bytes and signs
    POST /referrals/{id}/sign/{event}    the signature: verified against the directory, then published
    GET  /key                            load the organisation's key into this browser (never sent here)
    GET  /healthz, /readyz, /metrics     liveness, readiness (the read side answers), Prometheus

Why it is built this way (docs/inbox.md): the private key stays in the browser, as a non-extractable
WebCrypto key, so the updates stay the organisation's own word (non-repudiation) even though a server
renders the pages; the server only prepares what is to be signed, checks the signature with the
directory's public key before publishing, and applies the router's rules (from the read side) so that
it offers and accepts only what the router would apply.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo

import pydantic
import uvicorn
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from cepbus.contract.models import Event, ReferralStatusChanged
from cepbus.reference import ReferenceData, load_reference
from cepbus.reference.directory import Directory, directory_trust_problems, load_directory
from cepbus.runtime.logs import configure_logging, get_logger
from cepbus.runtime.settings import BrokerSettings
from cepbus.trust.modes import TrustError, TrustProblem, enforce
from cepbus.trust.settings import TrustSettings
from services.inbox import steps
from services.inbox.metrics import LOGINS, UPDATES
from services.inbox.readside import ReadSide, Unauthorized, Unavailable
from services.inbox.sessions import SentUpdate, Session, Sessions
from services.inbox.settings import InboxSettings, inbox_trust_problems, load_session_secret

HERE = Path(__file__).parent
#: Exit code when the configuration is refused (as the bus's services: cepbus/runtime/runner.py).
CONFIGURATION_REFUSED = 2
_LOGIN_COOKIE = "cepbus-inbox-login"
_NEXT = re.compile(r"^/referrals/[A-Za-z0-9][A-Za-z0-9._:-]{0,127}(/sign/[0-9a-f-]{36})?$")
_EVENT_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_PARIS = ZoneInfo("Europe/Paris")
#: No external asset, no inline script; the pages' data reaches their module as JSON elements.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class StatusPublisher(Protocol):
    """What the inbox needs of `cepbus.sdk.publisher.Publisher` (tests pass a recording one)."""

    def publish(self, event: Event) -> Any: ...


#: The inbox's Kafka principal (`cepbus.contract.wiring.EXTERNAL`).
PRINCIPAL = "cepbus-inbox"


class LazyPublisher:
    """The SDK's Publisher, connected on first use: the pages work while the broker is away, and a
    failed connection is retried at the next step rather than stopping the process."""

    def __init__(self, settings: BrokerSettings | None = None) -> None:
        self._settings = settings
        self._publisher: Any = None
        self._lock = threading.Lock()

    def publish(self, event: Event) -> Any:
        with self._lock:
            if self._publisher is None:
                from cepbus.sdk.publisher import Publisher

                # its own KafkaUser (deploy/k8s), whose ACL is Write on cep.referral.status only
                self._publisher = Publisher(self._settings, client_id=PRINCIPAL, principal=PRINCIPAL)
        return self._publisher.publish(event)


@dataclass
class Inbox:
    """The application's collaborators, on `app.state.inbox`."""

    settings: InboxSettings
    trust: TrustSettings
    directory: Directory
    reference: ReferenceData
    read_side: ReadSide
    publisher: StatusPublisher
    sessions: Sessions
    now: Callable[[], datetime]
    cookie_name: str
    secure: bool

    def org_name(self, org_id: str) -> str:
        return self.directory.get(org_id).name if org_id in self.directory else org_id

    def zone(self, region_code: str | None) -> ZoneInfo:
        try:
            return self.reference.region(region_code or "").zone
        except (KeyError, ValueError):
            return _PARIS

    def directory_keys(self, org_id: str) -> list[dict[str, str]]:
        """The organisation's keys valid now, as the pages compare the loaded key with them."""
        keys = self.directory.keys_valid_at(org_id, self.now()) if org_id in self.directory else []
        return [{"key_id": k.key_id, "public_key": k.public_key} for k in keys]


def inbox_problems(settings: InboxSettings, trust: TrustSettings, directory: Directory) -> list[TrustProblem]:
    """Everything production refuses here: the inbox's settings and the directory it verifies with."""
    return [*inbox_trust_problems(settings, trust), *directory_trust_problems(directory, trust)]


def build_app(
    settings: InboxSettings | None = None,
    *,
    trust: TrustSettings | None = None,
    directory: Directory | None = None,
    read_side: ReadSide | None = None,
    publisher: StatusPublisher | None = None,
    secret: bytes | None = None,
    now: Callable[[], datetime] | None = None,
) -> FastAPI:
    settings = settings or InboxSettings()
    trust = trust or TrustSettings()
    secure = settings.secure_cookies(trust)
    inbox = Inbox(
        settings=settings,
        trust=trust,
        directory=directory or load_directory(trust),
        reference=load_reference(),
        read_side=read_side or ReadSide(settings.read_side_url, settings.read_side_timeout_s),
        publisher=publisher or LazyPublisher(),
        sessions=Sessions(
            secret if secret is not None else load_session_secret(settings),
            settings.session_idle_s,
            settings.session_max_s,
        ),
        now=now or (lambda: datetime.now(UTC)),
        # __Host-: a cookie only this origin over HTTPS can set (no subdomain can plant one)
        cookie_name="__Host-cepbus-inbox" if secure else "cepbus-inbox",
        secure=secure,
    )
    app = FastAPI(title="cep-bus partner inbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.inbox = inbox
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    log = get_logger(service="inbox")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" would send Origin: null
        response.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def page(
        request: Request,
        name: str,
        session: Session | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        base = {
            "development": not trust.production,
            "org_id": session.org_id if session else None,
            "org_name": inbox.org_name(session.org_id) if session else None,
            "csrf": inbox.sessions.csrf_token(session) if session else None,
            "STATUS": steps.STATUS_LABELS,
            "CODES": steps.CODE_LABELS,
            "DEADLINES": steps.DEADLINE_LABELS,
            "label": steps.label,
        }
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)

    def problem(
        request: Request, session: Session | None, status_code: int, title: str, text: str
    ) -> Response:
        return page(request, "problem.html", session, status_code, title=title, text=text)

    def current(request: Request) -> Session | None:
        return inbox.sessions.get(request.cookies.get(inbox.cookie_name))

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    def same_origin(request: Request) -> bool:
        """A POST from another site's page carries its Origin: refused beside the form token."""
        origin = request.headers.get("origin")
        if origin is None:  # not sent by every browser on a same-origin form; the form token decides
            return True
        return origin.split("://", 1)[-1] == request.headers.get("host", "")

    def guarded(request: Request, csrf: str | None) -> Session | Response:
        """The session of a POST with a valid form token, or the answer refusing it."""
        session = current(request)
        if session is None:
            return to_login()
        if not same_origin(request) or not inbox.sessions.csrf_valid(session, csrf):
            log.warning("inbox_csrf_refused", org_id=session.org_id, path=request.url.path)
            return problem(
                request,
                session,
                403,
                "Formulaire refusé",
                "Ce formulaire ne vient pas de cette page (jeton de formulaire absent ou invalide). "
                "Rechargez la page et recommencez.",
            )
        return session

    def read(session: Session, call: Callable[[], Any], request: Request) -> Any:
        """A read-side call for the session; its refusals and outages as pages."""
        try:
            return call()
        except Unauthorized:
            inbox.sessions.close(session)
            return to_login()
        except Unavailable as exc:
            log.warning("inbox_read_side_unavailable", error=str(exc))
            return problem(
                request,
                session,
                503,
                "Service de suivi indisponible",
                "Le suivi des orientations ne répond pas pour le moment. Réessayez dans quelques minutes.",
            )

    def verdicts_of(session: Session, sent: list[SentUpdate]) -> dict[str, dict[str, Any]]:
        """The router's verdicts on these sent updates, by event id (those it has judged)."""
        found = {}
        for update in sent:
            verdict = inbox.read_side.update_verdict(session.org_id, update.event_id, session.token)
            if verdict is not None:
                found[update.event_id] = verdict
        return found

    def referral_or_404(session: Session, referral_id: str, request: Request) -> dict[str, Any] | Response:
        view = read(session, lambda: inbox.read_side.referral(referral_id, session.token), request)
        if isinstance(view, Response):
            return view
        # the read side scopes to the token's organisation; the inbox checks again rather than trusts
        if view is None or steps.role_of(view, session.org_id) is None:
            return problem(
                request,
                session,
                404,
                "Orientation introuvable",
                f"Aucune orientation {referral_id} pour {inbox.org_name(session.org_id)}.",
            )
        return dict(view)

    # -- log-in -----------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> Response:
        return RedirectResponse("/referrals" if current(request) else "/login", status_code=303)

    def login_page(request: Request, status_code: int = 200, error: str | None = None) -> Response:
        nonce, token = inbox.sessions.login_nonce()
        response = page(request, "login.html", None, status_code, login_token=token, error=error)
        response.set_cookie(
            _LOGIN_COOKIE, nonce, max_age=900, httponly=True, samesite="strict", secure=inbox.secure
        )
        return response

    @app.get("/login")
    def login_form(request: Request) -> Response:
        if current(request) is not None:
            return RedirectResponse("/referrals", status_code=303)
        return login_page(request)

    @app.post("/login")
    def login(
        request: Request,
        org_id: Annotated[str, Form(max_length=128)] = "",
        token: Annotated[str, Form(max_length=512)] = "",
        csrf: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        if not same_origin(request) or not inbox.sessions.login_token_valid(
            request.cookies.get(_LOGIN_COOKIE), csrf
        ):
            LOGINS.labels("csrf").inc()
            return login_page(request, 403, "Formulaire expiré ou venu d'ailleurs : recommencez.")
        org_id = org_id.strip()
        refused = "Organisation ou jeton d'accès refusé."
        if org_id not in inbox.directory or not token:
            LOGINS.labels("refused").inc()
            return login_page(request, 401, refused)
        try:
            inbox.read_side.open_referrals(org_id, token)
        except Unauthorized:
            LOGINS.labels("refused").inc()
            log.info("inbox_login_refused", org_id=org_id)
            return login_page(request, 401, refused)
        except Unavailable as exc:
            LOGINS.labels("unavailable").inc()
            log.warning("inbox_read_side_unavailable", error=str(exc))
            return login_page(request, 503, "Le suivi des orientations ne répond pas : réessayez plus tard.")
        LOGINS.labels("accepted").inc()
        _, cookie = inbox.sessions.open(org_id, token)
        log.info("inbox_login", org_id=org_id)
        response = RedirectResponse("/referrals", status_code=303)
        response.set_cookie(
            inbox.cookie_name,
            cookie,
            max_age=int(settings.session_max_s),
            httponly=True,
            samesite="strict",
            secure=inbox.secure,
            path="/",
        )
        response.delete_cookie(_LOGIN_COOKIE)
        return response

    @app.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
        session = guarded(request, csrf)
        if isinstance(session, Response):
            return session
        inbox.sessions.close(session)
        response = to_login()
        response.delete_cookie(inbox.cookie_name, path="/", secure=inbox.secure, samesite="strict")
        return response

    # -- referrals --------------------------------------------------------------------------------

    @app.get("/referrals")
    def referrals(request: Request) -> Response:
        session = current(request)
        if session is None:
            return to_login()
        opened = read(session, lambda: inbox.read_side.open_referrals(session.org_id, session.token), request)
        if isinstance(opened, Response):
            return opened
        now_ms = int(inbox.now().timestamp() * 1000)
        rows = []
        for record in opened:
            zone = inbox.zone(record.get("region_code"))
            due = record.get("pending_deadline_due_at_ms")
            rows.append(
                {
                    "record": record,
                    "requester": inbox.org_name(record["requester_org_id"]),
                    "recipient": inbox.org_name(record["recipient_org_id"]),
                    "requested_at": steps.french_datetime(record.get("requested_at_ms"), zone),
                    "due_day": steps.french_due_day(due, zone),
                    "overdue": due is not None and due <= now_ms,
                    "sort": (due is None, due or 0, record["referral_id"]),
                }
            )
        rows.sort(key=lambda row: row["sort"])
        return page(request, "referrals.html", session, rows=rows)

    @app.get("/referrals/{referral_id}")
    def referral(request: Request, referral_id: str) -> Response:
        session = current(request)
        if session is None:
            return to_login()
        view = referral_or_404(session, referral_id, request)
        if isinstance(view, Response):
            return view
        record = view["referral"]
        zone = inbox.zone(record.get("region_code"))
        applied = {h["event_id"] for h in view.get("history", [])}
        unapplied = [s for s in session.sent if s.referral_id == referral_id and s.event_id not in applied]
        # what the router said of each sent update not in the history: refused (with its reason), or
        # nothing yet (waiting, then, past the window, not judged: the bus is slow or lost it)
        verdicts = read(session, lambda: verdicts_of(session, unapplied), request)
        if isinstance(verdicts, Response):
            return verdicts
        refused = [
            {
                "sent": s,
                "code": verdicts[s.event_id].get("reason_code") or "refused",
                "text": steps.label(steps.REFUSAL_TEXTS, verdicts[s.event_id].get("reason_code")),
            }
            for s in unapplied
            if verdicts.get(s.event_id, {}).get("verdict") == "refused"
        ]
        # not judged yet, or judged applied after the view above was read (the next load shows it)
        unjudged = [s for s in unapplied if verdicts.get(s.event_id, {}).get("verdict") != "refused"]
        window = settings.pending_window_s
        waiting = [s for s in unjudged if time.time() - s.sent_at < window]
        not_applied = [s for s in unjudged if time.time() - s.sent_at >= window]
        due = record.get("pending_deadline_due_at_ms")
        history = [
            {
                **h,
                "at": steps.french_datetime(h.get("occurred_at_ms"), zone),
                "actor": inbox.org_name(h["actor_org_id"]),
            }
            for h in view.get("history", [])
        ]
        return page(
            request,
            "referral.html",
            session,
            view=view,
            record=record,
            role=steps.role_of(view, session.org_id),
            requester=inbox.org_name(record["requester_org_id"]),
            recipient=inbox.org_name(record["recipient_org_id"]),
            requested_at=steps.french_datetime(record.get("requested_at_ms"), zone),
            due_day=steps.french_due_day(due, zone),
            overdue=due is not None and due <= int(inbox.now().timestamp() * 1000),
            breaches=[
                {"deadline": b["deadline"], "day": steps.french_due_day(b["due_at_ms"], zone)}
                for b in view.get("breaches", [])
            ],
            history=history,
            offers=[] if waiting else steps.offers(view, session.org_id),
            waiting=waiting,
            not_applied=not_applied,
            refused=refused,
        )

    @app.post("/referrals/{referral_id}/steps")
    def prepare(
        request: Request,
        referral_id: str,
        status: Annotated[str, Form(max_length=64)] = "",
        reason_code: Annotated[str, Form(max_length=64)] = "",
        note: Annotated[str, Form(max_length=2000)] = "",
        csrf: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        session = guarded(request, csrf)
        if isinstance(session, Response):
            return session
        view = referral_or_404(session, referral_id, request)
        if isinstance(view, Response):
            return view
        codes = [s.get("codes") or [] for s in view.get("steps", []) if s.get("event") == status]
        code = (reason_code or None) if codes and codes[0] else None  # only a coded step keeps a code
        text = note.strip() or None
        refused = steps.refusal(view, session.org_id, status, code, text)
        if refused is not None:
            UPDATES.labels(status if status in steps.STATUS_LABELS else "unknown", refused.code).inc()
            return problem(request, session, 409, "Étape refusée", f"{refused.text} ({refused.code})")
        draft = steps.draft(view, session.org_id, status, code, text, inbox.now())
        session.add_draft(draft)
        return RedirectResponse(f"/referrals/{referral_id}/sign/{draft.envelope.event_id}", status_code=303)

    def draft_of(session: Session, referral_id: str, event_id: str) -> ReferralStatusChanged | None:
        draft = session.drafts.get(event_id) if re.match(_EVENT_ID, event_id) else None
        return draft if draft is not None and draft.referral_id == referral_id else None

    @app.get("/referrals/{referral_id}/sign/{event_id}")
    def sign_page(request: Request, referral_id: str, event_id: str) -> Response:
        session = current(request)
        if session is None:
            return to_login()
        draft = draft_of(session, referral_id, event_id)
        if draft is None:
            return problem(request, session, 404, "Brouillon introuvable", "Préparez l'étape à nouveau.")
        data = {
            "org_id": session.org_id,
            "update": steps.browser_fields(draft),
            "directory_keys": inbox.directory_keys(session.org_id),
            "key_page": f"/key?next=/referrals/{referral_id}/sign/{event_id}",
        }
        return page(
            request,
            "sign.html",
            session,
            data=data,
            draft=draft,
            action=steps.label(steps.ACTION_LABELS, draft.status.value),
            referral_id=referral_id,
        )

    @app.post("/referrals/{referral_id}/sign/{event_id}")
    def sign(
        request: Request,
        referral_id: str,
        event_id: str,
        signature: Annotated[str, Form(max_length=200)] = "",
        csrf: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        session = guarded(request, csrf)
        if isinstance(session, Response):
            return session
        draft = draft_of(session, referral_id, event_id)
        if draft is None:
            return problem(request, session, 404, "Brouillon introuvable", "Préparez l'étape à nouveau.")
        status = draft.status.value
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        signed = draft.model_copy(update={"signature": raw if len(raw) == 64 else None})
        key = inbox.directory.verify_status(signed, inbox.now()) if signed.signature else None
        if key is None:
            UPDATES.labels(status, "bad_signature").inc()
            log.warning(
                "inbox_bad_signature", org_id=session.org_id, referral_id=referral_id, event_id=event_id
            )
            return problem(
                request,
                session,
                400,
                "Signature refusée",
                f"La signature ne vérifie pas avec la clé de {inbox.org_name(session.org_id)} dans "
                "l'annuaire des orientations : rien n'a été envoyé. Chargez la clé de votre organisation "
                "et signez à nouveau. (bad_signature)",
            )
        view = referral_or_404(session, referral_id, request)  # the referral may have moved since
        if isinstance(view, Response):
            return view
        refused = steps.refusal(view, session.org_id, status, draft.reason_code, draft.note)
        if refused is not None:
            UPDATES.labels(status, refused.code).inc()
            return problem(request, session, 409, "Étape refusée", f"{refused.text} ({refused.code})")
        try:
            inbox.publisher.publish(signed)
        except Exception as exc:  # the broker's errors are many; nothing was acknowledged
            UPDATES.labels(status, "publish_failed").inc()
            log.warning("inbox_publish_failed", event_id=event_id, error=f"{type(exc).__name__}: {exc}")
            return problem(
                request,
                session,
                502,
                "Envoi impossible",
                "Le bus n'a pas accusé réception de la mise à jour signée. Réessayez : la même étape "
                "renvoyée est reconnue comme la même mise à jour.",
            )
        UPDATES.labels(status, "published").inc()
        session.drafts.pop(event_id, None)
        session.add_sent(SentUpdate(event_id, referral_id, status, time.time()))
        log.info(
            "inbox_update_published",
            org_id=session.org_id,
            referral_id=referral_id,
            event_id=event_id,
            status=status,
            key_id=key.key_id,
        )
        return RedirectResponse(f"/referrals/{referral_id}", status_code=303)

    @app.get("/key")
    def key_page(request: Request, next: str = "") -> Response:
        session = current(request)
        if session is None:
            return to_login()
        data = {
            "org_id": session.org_id,
            "directory_keys": inbox.directory_keys(session.org_id),
            "next": next if _NEXT.match(next) else None,
        }
        return page(request, "key.html", session, data=data)

    # -- operations -------------------------------------------------------------------------------

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/readyz")
    def readyz() -> Response:
        ok = inbox.read_side.healthy()
        return JSONResponse({"ok": ok, "read_side": inbox.read_side.base_url}, status_code=200 if ok else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


def main() -> None:
    """Serve the inbox; refuse (one line on stderr, exit 2) what production refuses."""
    configure_logging("inbox")
    log = get_logger(service="inbox")
    try:
        settings, trust = InboxSettings(), TrustSettings()
        directory = load_directory(trust)
        for found in enforce(inbox_problems(settings, trust, directory), trust):
            log.warning("development_trust_material", service="inbox", problem=str(found))
        app = build_app(settings, trust=trust, directory=directory)
    except (TrustError, ValueError, OSError, pydantic.ValidationError) as exc:
        print(f"cep-bus inbox: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(CONFIGURATION_REFUSED) from None
    log.info("inbox_starting", host=settings.host, port=settings.port, read_side=settings.read_side_url)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


__all__ = ["Inbox", "LazyPublisher", "StatusPublisher", "build_app", "inbox_problems", "main"]
