"""The referral read side over HTTP (FastAPI, served by uvicorn in a daemon thread of the router).

    GET /referrals/{referral_id}              -> ReferralView: {"referral": {...}, "history": [...],
                                                  "breaches": [...], "steps": [...]}
    GET /organisations/{org_id}/referrals     -> OpenReferralsView: {"org_id": ..., "open": [...]}
    GET /organisations/{org_id}/updates/{event_id}
                                              -> UpdateVerdictView: the router's verdict on a status
                                                 update that organisation signed: applied or refused,
                                                 with the reason (404 while it has not judged it)
    GET /healthz                              -> {"ok": true}   (no authentication)
    GET /openapi.json, /docs                  -> the OpenAPI document, from FastAPI

The answers are the contract's models (`cepbus/contract/readside.py`), which its clients (the partner
inbox) validate against. Every other request is authenticated as one organisation by `Authorization:
Bearer <token>` (`services/router/referrals/auth.py`); an organisation sees only the referrals it is
party to (as requester or recipient): another organisation's referral is a 404, as if it did not exist,
another organisation's list a 403. It listens on loopback by default; in production a TLS-terminating
ingress fronts it (deploy/k8s).
"""

from __future__ import annotations

import base64
import threading
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cepbus.contract.identifiers import ID_PATTERN
from cepbus.contract.models import ReferralStatus, SealedContact, UpdateVerdict
from cepbus.contract.readside import (
    BreachView,
    ExportedReferralView,
    HistoryEntryView,
    OpenReferralsView,
    ReferralParty,
    ReferralRecordView,
    ReferralsExportView,
    ReferralView,
    SealedContactView,
    StepView,
    UpdateVerdictView,
)
from services.router.referrals.auth import TokenBook
from services.router.referrals.machine import DECLINE_REASONS, OUTCOMES, TRANSITIONS
from services.router.referrals.store import ReferralStore

#: The codes a step must carry (the machine's: a decline its reason, a completion its outcome).
_STEP_CODES = {ReferralStatus.DECLINED: DECLINE_REASONS, ReferralStatus.COMPLETED: OUTCOMES}


def next_steps(state: ReferralStatus) -> list[StepView]:
    """The steps the lifecycle allows from `state`, with the party each belongs to and the codes it
    needs: the machine's own rules, so that a client (the partner inbox) offers only what the router
    would apply and refuses the rest with the router's reasons, without a copy of the table."""
    return [
        StepView(
            event=t.event,
            actor=ReferralParty(t.actor.value),
            to=t.target,
            codes=sorted(_STEP_CODES.get(t.event, ())),
        )
        for t in TRANSITIONS
        if t.source == state
    ]


def read_referral(store: ReferralStore, referral_id: str, caller: str | None = None) -> ReferralView | None:
    """Current status, full history, reported breaches and next steps of one referral (None if
    unknown); the status and the history from one snapshot, so that they always agree. The sealed
    contact only when `caller` is the recipient it is sealed to."""
    found = store.with_history(referral_id)
    if found is None:
        return None
    record, history = found
    sealed = store.contact_of(referral_id) if caller == record.recipient_org_id else None
    return ReferralView(
        referral=ReferralRecordView.model_validate(record.to_json()),
        history=[HistoryEntryView.model_validate(entry.to_json()) for entry in history],
        breaches=[BreachView(deadline=name, due_at_ms=due) for name, due in store.breaches(referral_id)],
        steps=next_steps(record.state),
        sealed_contact=_contact_view(sealed),
    )


def read_open(store: ReferralStore, org_id: str) -> OpenReferralsView:
    """The referrals `org_id` is party to that are still open."""
    return OpenReferralsView(
        org_id=org_id,
        open=[ReferralRecordView.model_validate(record.to_json()) for record in store.open_for(org_id)],
    )


def _contact_view(sealed: SealedContact | None) -> SealedContactView | None:
    if sealed is None:
        return None
    return SealedContactView(
        recipient_key_id=sealed.recipient_key_id,
        ciphertext_b64=base64.b64encode(sealed.ciphertext).decode(),
        ciphertext_sha256_hex=sealed.ciphertext_sha256.hex(),
    )


def read_export(store: ReferralStore, org_id: str) -> ReferralsExportView:
    """Every referral `org_id` is party to, open or closed, with the contacts sealed to it."""
    return ReferralsExportView(
        org_id=org_id,
        referrals=[
            ExportedReferralView(
                referral=ReferralRecordView.model_validate(record.to_json()),
                closing_reason_code=reason if not record.open else None,
                sealed_contact=_contact_view(sealed),
            )
            for record, reason, sealed in store.all_for(org_id)
        ],
    )


def read_verdict(store: ReferralStore, org_id: str, event_id: str) -> UpdateVerdictView | None:
    """The verdict given on the update `org_id` signed with `event_id` (None: not judged yet, or not
    authenticated as that organisation's, which the router does not remember). The same answer the
    signer got on its rejection topic, for a client that does not read Kafka (the partner inbox)."""
    seen = store.seen(org_id, event_id)
    if seen is None:
        return None
    return UpdateVerdictView(
        org_id=org_id,
        event_id=event_id,
        verdict=UpdateVerdict(seen.verdict),
        reason_code=seen.reason_code,
        detail=seen.detail,
        state_before=seen.state_before,
        state_after=seen.state_after,
    )


def referral_view(store: ReferralStore, referral_id: str) -> dict[str, Any] | None:
    """One referral as `cep-bus referral show` prints it: the read side's view without its steps."""
    view = read_referral(store, referral_id)
    return None if view is None else view.model_dump(mode="json", exclude={"steps", "sealed_contact"})


def open_view(store: ReferralStore, org_id: str) -> dict[str, Any]:
    """An organisation's open referrals as `cep-bus referral open` prints them."""
    return read_open(store, org_id).model_dump(mode="json")


_bearer = HTTPBearer(auto_error=False, description="A token bound to one organisation id")


def _organisation(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The organisation the request is authenticated as, or 401."""
    tokens: TokenBook = request.app.state.tokens
    org = tokens.org_for(credentials.credentials) if credentials is not None else None
    if org is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token bound to an organisation is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return org


Caller = Annotated[str, Depends(_organisation)]
#: A referral, organisation or event id in a path; any other is refused (422) before it reaches the store.
PathId = Annotated[str, Path(pattern=ID_PATTERN)]


def build_read_side(store: ReferralStore, tokens: TokenBook) -> FastAPI:
    app = FastAPI(
        title="cep-bus referral read side",
        version="1",
        description="A referral's status and history, and an organisation's open referrals, for the "
        "organisations party to them. Bearer token bound to one organisation.",
    )
    app.state.tokens = tokens

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/referrals/{referral_id}")
    def referral(caller: Caller, referral_id: PathId) -> ReferralView:
        view = read_referral(store, referral_id, caller)
        if view is None or caller not in (view.referral.requester_org_id, view.referral.recipient_org_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id} for {caller}")
        return view

    @app.get("/organisations/{org_id}/referrals")
    def open_referrals(caller: Caller, org_id: PathId) -> OpenReferralsView:
        if org_id != caller:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"authenticated as {caller}, not {org_id}")
        return read_open(store, org_id)

    @app.get("/organisations/{org_id}/referrals/export")
    def export(caller: Caller, org_id: PathId) -> ReferralsExportView:
        if org_id != caller:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"authenticated as {caller}, not {org_id}")
        return read_export(store, org_id)

    @app.get("/organisations/{org_id}/updates/{event_id}")
    def update_verdict(caller: Caller, org_id: PathId, event_id: PathId) -> UpdateVerdictView:
        if org_id != caller:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"authenticated as {caller}, not {org_id}")
        verdict = read_verdict(store, org_id, event_id)
        if verdict is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no verdict yet on {org_id}'s update {event_id}")
        return verdict

    return app


def serve_read_side(
    store: ReferralStore, port: int, tokens: TokenBook, host: str = "127.0.0.1"
) -> uvicorn.Server:
    """Serve the read side from a daemon thread; returns the server (`should_exit = True` stops it)."""
    config = uvicorn.Config(build_read_side(store, tokens), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="referrals-http", daemon=True).start()
    return server
