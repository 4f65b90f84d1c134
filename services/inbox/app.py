"""The partner inbox web application (FastAPI, server-rendered Jinja2 pages, one ES module per page).

    GET  /login, POST /login             log in with the organisation's read-side token
    POST /logout
    GET  /referrals                      the organisation's open referrals, with their deadlines and the
                                         reminders due, and its expired referrals
    GET  /referrals/{id}                 one referral: status, deadline, signed history, the steps it may take
                                         (and for its recipient the person's sealed contact, opened in the
                                         browser, never here)
    POST /referrals/{id}/steps           prepare the unsigned update of a step (a draft, kept in the session)
    GET  /referrals/{id}/sign/{event}    the page that signs it: the browser rebuilds the Avro bytes and signs
    POST /referrals/{id}/sign/{event}    the signature and key id: verified against the directory, then
                                         published as the message's cepbus-signature header
    GET  /key                            load the organisation's signing and encryption keys into this
                                         browser (never sent here)
    GET  /export                         « Exporter (CSV) »: the page's script adds the contacts it opens
    GET  /export.csv                     every referral of the organisation as CSV, without any contact
    GET  /healthz, /readyz, /metrics     liveness, readiness (the read side answers), Prometheus

The pages are in `services/inbox/pages/`, one router per group; `build_app` assembles them around the
collaborators they share (`services/inbox/container.py`, on `app.state.inbox`).

Why it is built this way (docs/inbox.md): the private key stays in the browser, as a non-extractable
WebCrypto key, so the updates stay the organisation's own word (non-repudiation) even though a server
renders the pages; the server only prepares what is to be signed (the page rebuilds its Avro bytes
itself), checks the browser's statement signature with the directory's public key before publishing it
beside the update, never signs anything itself, and applies the router's rules (from the read side)
so that it offers and accepts only what the router would apply.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from cepbus.reference import load_reference
from cepbus.reference.authorship import Authorship
from cepbus.reference.directory import Directory, directory_trust_problems, load_directory
from cepbus.reference.producers import ProducerCatalog
from cepbus.runtime.instruments import KafkaRequests
from cepbus.runtime.logs import configure_logging, get_logger
from cepbus.trust.modes import TrustError, TrustProblem, enforce
from cepbus.trust.settings import TrustSettings
from services.inbox.container import Inbox
from services.inbox.pages import export, key, login, operations, referrals, signing
from services.inbox.pages.answers import EarlyResponse, answer_early
from services.inbox.publishing import LazyPublisher, StatusPublisher
from services.inbox.readside import ReadSide
from services.inbox.security_headers import security_headers
from services.inbox.sessions import Sessions
from services.inbox.settings import InboxSettings, inbox_trust_problems, load_session_secret
from services.inbox.throttle import LoginThrottle

HERE = Path(__file__).parent
#: Exit code when the configuration is refused (as the bus's services: cepbus/runtime/runner.py).
CONFIGURATION_REFUSED = 2


def inbox_problems(settings: InboxSettings, trust: TrustSettings, directory: Directory) -> list[TrustProblem]:
    """Everything production refuses here: the inbox's settings and the directory it verifies with."""
    return [*inbox_trust_problems(settings, trust), *directory_trust_problems(directory, trust)]


def login_throttle(settings: InboxSettings, now: Callable[[], datetime] | None = None) -> LoginThrottle:
    """The failed-log-in limiter the settings describe; on the monotonic clock, or on `now` when a
    test gives one (so that moving it expires a lock)."""
    return LoginThrottle(
        throttle_after=settings.login_throttle_after,
        lock_after=settings.login_lock_after,
        window_s=settings.login_window_s,
        lock_s=settings.login_lock_s,
        clock=(lambda: now().timestamp()) if now is not None else time.monotonic,
    )


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
    """The application; what is not given is built from the settings (tests give fakes)."""
    settings = settings or InboxSettings()
    trust = trust or TrustSettings()
    secure = settings.secure_cookies(trust)
    directory = directory or load_directory(trust)
    reference = load_reference()
    inbox = Inbox(
        settings=settings,
        trust=trust,
        directory=directory,
        reference=reference,
        read_side=read_side or ReadSide(settings.read_side_url, settings.read_side_timeout_s),
        publisher=publisher or LazyPublisher(),
        sessions=Sessions(
            secret if secret is not None else load_session_secret(settings),
            settings.session_idle_s,
            settings.session_max_s,
        ),
        templates=Jinja2Templates(directory=HERE / "templates"),
        now=now or (lambda: datetime.now(UTC)),
        # __Host-: a cookie only this origin over HTTPS can set (no subdomain can plant one)
        cookie_name="__Host-cepbus-inbox" if secure else "cepbus-inbox",
        secure=secure,
        throttle=login_throttle(settings, now),
        # the runtime's own check of who signed a statement: the same verdict as the router's edge
        authorship=Authorship(directory, ProducerCatalog.build(reference, directory)),
    )
    app = FastAPI(title="cep-bus partner inbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.inbox = inbox
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.middleware("http")(security_headers)
    app.add_exception_handler(EarlyResponse, answer_early)
    for group in (login, referrals, signing, key, export, operations):
        app.include_router(group.router)
    return app


def main(requests: KafkaRequests | None = None) -> None:
    """Serve the inbox; refuse (one line on stderr, exit 2) what production refuses. `requests`: a record
    of the Kafka requests its publisher makes (the composition root attaches one for the ACL test)."""
    configure_logging("inbox")
    log = get_logger(service="inbox")
    try:
        settings, trust = InboxSettings(), TrustSettings()
        directory = load_directory(trust)
        for found in enforce(inbox_problems(settings, trust, directory), trust):
            log.warning("development_trust_material", service="inbox", problem=str(found))
        app = build_app(
            settings, trust=trust, directory=directory, publisher=LazyPublisher(requests=requests)
        )
    except (TrustError, ValueError, OSError, pydantic.ValidationError) as exc:
        print(f"cep-bus inbox: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(CONFIGURATION_REFUSED) from None
    log.info("inbox_starting", host=settings.host, port=settings.port, read_side=settings.read_side_url)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


__all__ = ["Inbox", "LazyPublisher", "StatusPublisher", "build_app", "inbox_problems", "main"]
