"""The read side's answers for a page: a refused token ends the session (to the log-in), an outage is a
503 page, and a referral the organisation is not party to is a 404 page."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cepbus.contract.readside import ReferralView, UpdateVerdictView
from cepbus.runtime.logs import get_logger
from services.inbox import steps
from services.inbox.pages.answers import EarlyResponse, Visit, to_login
from services.inbox.readside import Unauthorized, Unavailable
from services.inbox.sessions import SentUpdate

log = get_logger(service="inbox")
T = TypeVar("T")


def read(visit: Visit, call: Callable[[], T]) -> T:
    """A read-side call for the visit's session; its refusals and outages answered as pages."""
    try:
        return call()
    except Unauthorized:
        visit.inbox.sessions.close(visit.session)
        raise EarlyResponse(to_login()) from None
    except Unavailable as exc:
        log.warning("inbox_read_side_unavailable", error=str(exc))
        raise EarlyResponse(
            visit.problem(
                503,
                "Service de suivi indisponible",
                "Le suivi des orientations ne répond pas pour le moment. Réessayez dans quelques minutes.",
            )
        ) from None


def referral_or_404(visit: Visit, referral_id: str) -> ReferralView:
    """The referral's view, if the session's organisation is party to it."""
    session = visit.session
    view = read(visit, lambda: visit.inbox.read_side.referral(referral_id, session.token))
    # the read side scopes to the token's organisation; the inbox checks again rather than trusts
    if view is None or steps.role_of(view, session.org_id) is None:
        raise EarlyResponse(
            visit.problem(
                404,
                "Orientation introuvable",
                f"Aucune orientation {referral_id} pour {visit.inbox.org_name(session.org_id)}.",
            )
        )
    return view


def verdicts_of(visit: Visit, sent: list[SentUpdate]) -> dict[str, UpdateVerdictView]:
    """The router's verdicts on these sent updates, by event id (those it has judged)."""
    session, read_side = visit.session, visit.inbox.read_side
    found = {}
    for update in sent:
        verdict = read_side.update_verdict(session.org_id, update.event_id, session.token)
        if verdict is not None:
            found[update.event_id] = verdict
    return found
