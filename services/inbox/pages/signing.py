"""A step, from the button to the bus: the server prepares the unsigned update (a draft, kept in the
session), the page's script recomputes its bytes and signs them in the browser, and the server checks
the signature with the directory's key and the router's rules again before publishing it."""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response

from cepbus.contract.models import ReferralStatusChanged
from cepbus.runtime.logs import get_logger
from services.inbox import steps
from services.inbox.metrics import UPDATES
from services.inbox.pages.answers import EarlyResponse, Visit
from services.inbox.pages.dependencies import Guarded, LoggedIn
from services.inbox.pages.reading import referral_or_404
from services.inbox.sessions import SentUpdate

_EVENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

log = get_logger(service="inbox")
router = APIRouter()


def refused_step(visit: Visit, refusal: steps.Refusal) -> Response:
    return visit.problem(409, "Étape refusée", f"{refusal.text} ({refusal.code})")


@router.post("/referrals/{referral_id}/steps")
def prepare(
    visit: Guarded,
    referral_id: str,
    status: Annotated[str, Form(max_length=64)] = "",
    reason_code: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    session = visit.session
    view = referral_or_404(visit, referral_id)
    step = steps.step_for(view, status)
    code = (reason_code or None) if step is not None and step.codes else None  # only a coded step keeps one
    text = note.strip() or None
    refused = steps.refusal(view, session.org_id, status, code, text)
    if refused is not None:
        UPDATES.labels(status if status in steps.STATUS_LABELS else "unknown", refused.code).inc()
        return refused_step(visit, refused)
    draft = steps.draft(view, session.org_id, status, code, text, visit.inbox.now())
    session.add_draft(draft)
    return RedirectResponse(f"/referrals/{referral_id}/sign/{draft.envelope.event_id}", status_code=303)


def draft_or_404(visit: Visit, referral_id: str, event_id: str) -> ReferralStatusChanged:
    """The draft this session prepared for that referral under that event id."""
    draft = visit.session.drafts.get(event_id) if _EVENT_ID.match(event_id) else None
    if draft is None or draft.referral_id != referral_id:
        raise EarlyResponse(visit.problem(404, "Brouillon introuvable", "Préparez l'étape à nouveau."))
    return draft


@router.get("/referrals/{referral_id}/sign/{event_id}")
def sign_page(visit: LoggedIn, referral_id: str, event_id: str) -> Response:
    draft = draft_or_404(visit, referral_id, event_id)
    org_id = visit.session.org_id
    data = {
        "org_id": org_id,
        "update": steps.browser_fields(draft),
        "directory_keys": visit.inbox.directory_keys(org_id),
        "key_page": f"/key?next=/referrals/{referral_id}/sign/{event_id}",
    }
    return visit.page(
        "sign.html",
        data=data,
        draft=draft,
        action=steps.label(steps.ACTION_LABELS, draft.status),
        referral_id=referral_id,
    )


def signature_bytes(signature: str) -> bytes | None:
    """The form's base64 Ed25519 signature, or None when it is not one (64 bytes)."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    return raw if len(raw) == 64 else None


@router.post("/referrals/{referral_id}/sign/{event_id}")
def sign(
    visit: Guarded,
    referral_id: str,
    event_id: str,
    signature: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    inbox, session = visit.inbox, visit.session
    draft = draft_or_404(visit, referral_id, event_id)
    status = draft.status.value
    signed = draft.model_copy(update={"signature": signature_bytes(signature)})
    key = inbox.directory.verify_status(signed, inbox.now()) if signed.signature else None
    if key is None:
        UPDATES.labels(status, "bad_signature").inc()
        log.warning("inbox_bad_signature", org_id=session.org_id, referral_id=referral_id, event_id=event_id)
        return visit.problem(
            400,
            "Signature refusée",
            f"La signature ne vérifie pas avec la clé de {inbox.org_name(session.org_id)} dans "
            "l'annuaire des orientations : rien n'a été envoyé. Chargez la clé de votre organisation "
            "et signez à nouveau. (bad_signature)",
        )
    view = referral_or_404(visit, referral_id)  # the referral may have moved since
    refused = steps.refusal(view, session.org_id, status, draft.reason_code, draft.note)
    if refused is not None:
        UPDATES.labels(status, refused.code).inc()
        return refused_step(visit, refused)
    try:
        inbox.publisher.publish(signed)
    except Exception as exc:  # the broker's errors are many; nothing was acknowledged
        UPDATES.labels(status, "publish_failed").inc()
        log.warning("inbox_publish_failed", event_id=event_id, error=f"{type(exc).__name__}: {exc}")
        return visit.problem(
            502,
            "Envoi impossible",
            "Le bus n'a pas accusé réception de la mise à jour signée. Réessayez : la même étape "
            "renvoyée est reconnue comme la même mise à jour.",
        )
    UPDATES.labels(status, "published").inc()
    session.drafts.pop(event_id, None)
    session.add_sent(SentUpdate(event_id, referral_id, draft.status, time.time()))
    log.info(
        "inbox_update_published",
        org_id=session.org_id,
        referral_id=referral_id,
        event_id=event_id,
        status=status,
        key_id=key.key_id,
    )
    return RedirectResponse(f"/referrals/{referral_id}", status_code=303)
