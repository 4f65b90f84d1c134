"""A step, from the button to the bus: the server prepares the unsigned update (a draft, kept in the
session); the page's script rebuilds its statement (the Avro single-object bytes) from the fields it
shows and signs it in the browser; the server recomputes the same bytes from its own draft, verifies the
signature as the router's edge will (`cepbus.reference.authorship`: a key of the organisation logged in,
valid now), checks the router's rules again, and publishes the update with that signature as its
`cepbus-signature` header. The server signs nothing."""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response

from cepbus.contract.models import ReferralStatusChanged
from cepbus.contract.statements import KEY_ID_REGEX, StatementSignature
from cepbus.contract.topics import core_topic, topic_for
from cepbus.reference.authorship import AuthorshipError
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
    # a textarea's line breaks travel as CRLF: room for them before they are made LF and counted
    note: Annotated[str, Form(max_length=2 * steps.NOTE_MAX)] = "",
) -> Response:
    session = visit.session
    view = referral_or_404(visit, referral_id)
    step = steps.step_for(view, status)
    code = (reason_code or None) if step is not None and step.codes else None  # only a coded step keeps one
    text = note.replace("\r\n", "\n").strip() or None
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
        "fingerprint": steps.writer_fingerprint(),  # the writer schema the page encodes the update with
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


#: Why a signature is refused, for the page (the code, the runtime's reason, follows in brackets).
SIGNATURE_REFUSALS: dict[str, str] = {
    "malformed_signature": "La signature envoyée n'en est pas une (64 octets et un identifiant de clé).",
    "bad_signature": "La signature ne correspond pas à cette mise à jour : elle n'a pas été faite sur la "
    "déclaration préparée ici.",
    "unknown_key": "La clé qui a signé n'est pas dans l'annuaire des orientations.",
    "key_not_valid": "La clé qui a signé n'est plus (ou pas encore) valide dans l'annuaire.",
    "misattributed": "La signature est celle d'une autre organisation.",
}
#: Any other reason of `cepbus.reference.authorship` (the update speaks for someone else).
_OTHER_REFUSAL = "Cette mise à jour ne peut pas être signée au nom de votre organisation."


def checked_signature(
    visit: Visit, draft: ReferralStatusChanged, signature: str, key_id: str
) -> StatementSignature | str:
    """The posted statement signature when the browser signed exactly this draft's statement with a
    key of the organisation logged in, valid now, as the router's edge will check it; else the
    refusal's reason code.

    The browser signs a batch of one (n = 1, i = 0, no path). The statement is recomputed here from
    the server's own draft (never from fields the browser sends), so a signature of anything else
    (other fields, an earlier step, another draft) fails."""
    raw = signature_bytes(signature)
    if raw is None or not KEY_ID_REGEX.match(key_id):
        return "malformed_signature"
    signed = StatementSignature(key_id, raw)
    authorship = visit.inbox.authorship
    try:
        author = authorship.verify(steps.statement_of(draft), signed.header(), at=visit.inbox.now())
        authorship.judge(draft, author, core_topic(topic_for(draft).name))
    except AuthorshipError as refused:
        return refused.reason
    return signed if author.org_id == visit.session.org_id else "misattributed"


@router.post("/referrals/{referral_id}/sign/{event_id}")
def sign(
    visit: Guarded,
    referral_id: str,
    event_id: str,
    signature: Annotated[str, Form(max_length=200)] = "",
    key_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    inbox, session = visit.inbox, visit.session
    draft = draft_or_404(visit, referral_id, event_id)
    status = draft.status.value
    signed = checked_signature(visit, draft, signature, key_id)
    if isinstance(signed, str):
        UPDATES.labels(status, signed).inc()
        log.warning(
            "inbox_signature_refused",
            org_id=session.org_id,
            referral_id=referral_id,
            event_id=event_id,
            reason=signed,
        )
        return visit.problem(
            400,
            "Signature refusée",
            f"{SIGNATURE_REFUSALS.get(signed, _OTHER_REFUSAL)} Rien n'a été envoyé. Vérifiez que la clé "
            f"de {inbox.org_name(session.org_id)} est chargée dans ce navigateur et signez à nouveau. "
            f"({signed})",
        )
    view = referral_or_404(visit, referral_id)  # the referral may have moved since
    refused = steps.refusal(view, session.org_id, status, draft.reason_code, draft.note)
    if refused is not None:
        UPDATES.labels(status, refused.code).inc()
        return refused_step(visit, refused)
    try:
        # the browser's signature, verified above, travels as the message's header: the inbox signs nothing
        inbox.publisher.publish(draft, signed=signed)
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
        key_id=key_id,
    )
    return RedirectResponse(f"/referrals/{referral_id}", status_code=303)
