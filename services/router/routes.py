"""The router's route table: where each event the router reads goes, in one place.

    cep.intake.registered     IntakeRegistered       RouterHandlers.on_intake
    cep.notice.issued         NoticeIssued           RouterHandlers.on_notice_issued
    cep.choice.recorded       ChoiceRecorded         RouterHandlers.on_choice
    cep.servicelevel.started  ServiceLevelStarted    RouterHandlers.on_service_level
    cep.referral.requested    ReferralRequested      RequestRouting.on_requested
    cep.referral.status       ReferralStatusChanged  ReferralLifecycle.on_status

The router's state changes are batched (one store transaction per batch of events), and what each
handler decides is stored in the same transaction, in the store's outbox, then relayed: a crash or a
redelivery re-sends the first decision, never another one.
"""

from __future__ import annotations

from cepbus.contract.topics import (
    CHOICE_RECORDED,
    INTAKE_REGISTERED,
    NOTICE_ISSUED,
    REFERRAL_REQUESTED,
    REFERRAL_STATUS,
    SERVICE_LEVEL_STARTED,
)
from cepbus.runtime.service import Route, route
from services.router.handlers import RouterHandlers
from services.router.referrals.handlers import ReferralLifecycle, RequestRouting


def route_table(
    handlers: RouterHandlers, requests: RequestRouting, lifecycle: ReferralLifecycle
) -> list[Route]:
    state, outbox = handlers.store.transaction, handlers.store.outbox
    referrals, referral_outbox = lifecycle.store.transaction, lifecycle.store.outbox
    return [
        route(INTAKE_REGISTERED, handlers.on_intake, state, outbox=outbox),
        route(NOTICE_ISSUED, handlers.on_notice_issued, state, outbox=outbox),
        route(CHOICE_RECORDED, handlers.on_choice, state, outbox=outbox),
        route(SERVICE_LEVEL_STARTED, handlers.on_service_level, state, outbox=outbox),
        route(REFERRAL_REQUESTED, requests.on_requested, referrals, outbox=referral_outbox),
        route(REFERRAL_STATUS, lifecycle.on_status, referrals, outbox=referral_outbox),
    ]
