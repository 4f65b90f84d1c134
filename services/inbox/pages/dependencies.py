"""The FastAPI dependencies of the pages: the inbox, the session, and the form-token (CSRF) guard of
every POST made in a session. A request they refuse is answered early (`EarlyResponse`): the log-in
page for no session, a 403 page for a form that does not come from this inbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request

from cepbus.runtime.logs import get_logger
from services.inbox.container import Inbox
from services.inbox.pages.answers import EarlyResponse, Visit, to_login
from services.inbox.sessions import Session

log = get_logger(service="inbox")


def the_inbox(request: Request) -> Inbox:
    inbox: Inbox = request.app.state.inbox
    return inbox


InboxDep = Annotated[Inbox, Depends(the_inbox)]


def current_session(request: Request, inbox: InboxDep) -> Session | None:
    """The live session the request's cookie names, if any."""
    return inbox.sessions.get(request.cookies.get(inbox.cookie_name))


MaybeSession = Annotated[Session | None, Depends(current_session)]


def logged_in(request: Request, inbox: InboxDep, session: MaybeSession) -> Visit:
    """The request of a live session; without one, the log-in page."""
    if session is None:
        raise EarlyResponse(to_login())
    return Visit(inbox, request, session)


LoggedIn = Annotated[Visit, Depends(logged_in)]


def same_origin(request: Request) -> bool:
    """A POST from another site's page carries its Origin: refused beside the form token."""
    origin = request.headers.get("origin")
    if origin is None:  # not sent by every browser on a same-origin form; the form token decides
        return True
    return origin.split("://", 1)[-1] == request.headers.get("host", "")


def form_guarded(visit: LoggedIn, csrf: Annotated[str, Form(max_length=128)] = "") -> Visit:
    """A POST of a live session whose form carries that session's token and comes from this origin."""
    if not same_origin(visit.request) or not visit.inbox.sessions.csrf_valid(visit.session, csrf):
        log.warning("inbox_csrf_refused", org_id=visit.session.org_id, path=visit.request.url.path)
        raise EarlyResponse(
            visit.problem(
                403,
                "Formulaire refusé",
                "Ce formulaire ne vient pas de cette page (jeton de formulaire absent ou invalide). "
                "Rechargez la page et recommencez.",
            )
        )
    return visit


Guarded = Annotated[Visit, Depends(form_guarded)]
