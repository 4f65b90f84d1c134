"""How a page answers: rendered with the context every template shares, or early (to the log-in, or a
problem page) from inside a dependency or a helper, so that endpoints read as their happy path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.inbox import steps
from services.inbox.container import Inbox
from services.inbox.sessions import Session


class EarlyResponse(Exception):
    """The answer to send instead of the page asked for; `answer_early` (the app's handler) sends it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def answer_early(request: Request, exc: Exception) -> Response:
    """The exception handler of `EarlyResponse`."""
    assert isinstance(exc, EarlyResponse)
    return exc.response


def to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def render(
    inbox: Inbox, request: Request, name: str, session: Session | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A template with what `base.html` needs: the organisation logged in, the form token, the labels."""
    base = {
        "development": not inbox.trust.production,
        "org_id": session.org_id if session else None,
        "org_name": inbox.org_name(session.org_id) if session else None,
        "csrf": inbox.sessions.csrf_token(session) if session else None,
        "STATUS": steps.STATUS_LABELS,
        "CODES": steps.CODE_LABELS,
        "DEADLINES": steps.DEADLINE_LABELS,
        "NOTE_MAX": steps.NOTE_MAX,
        "label": steps.label,
    }
    return inbox.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


@dataclass(frozen=True)
class Visit:
    """One request of a logged-in session: what its pages are rendered for."""

    inbox: Inbox
    request: Request
    session: Session

    def page(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return render(self.inbox, self.request, name, self.session, status_code, **context)

    def problem(self, status_code: int, title: str, text: str) -> HTMLResponse:
        return self.page("problem.html", status_code, title=title, text=text)
