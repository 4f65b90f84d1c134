"""The mailer's route table.

cep.referral.inbox.<org>  ReferralRequested      MailerHandlers.on_referral  (one topic per organisation)
cep.referral.verdict      ReferralUpdateVerdict  MailerHandlers.on_verdict
cep.referral.reminder     ReferralReminderDue    MailerHandlers.on_reminder
cep.referral.expired      ReferralExpired        MailerHandlers.on_expired

Each batch's emails go into the mail outbox in the batch's transaction; the send timer sends them.

The runtime subscribes to literal topics (`ServiceDefinition.topics_read`, the consumer's subscription
and the wiring check), so the inbox prefix of the wiring (`cep.referral.inbox.*`) is read as the list of
every organisation's inbox topic, from the directory and the reference the mailer starts with: what the
topic catalog creates (`cepbus.contract.topics.catalog`).
"""

from __future__ import annotations

from collections.abc import Sequence

from cepbus.contract.models import ReferralRequested
from cepbus.contract.topics import REFERRAL_EXPIRED, REFERRAL_REMINDER, REFERRAL_VERDICT, TopicSpec
from cepbus.runtime.service import Route, route
from services.mailer.handlers import MailerHandlers
from services.mailer.store import MailerStore

INBOXES_ROUTE = "referral-inboxes"


def route_table(handlers: MailerHandlers, store: MailerStore, inboxes: Sequence[TopicSpec]) -> list[Route]:
    return [
        Route(INBOXES_ROUTE, tuple(inboxes), ReferralRequested, handlers.on_referral, store.transaction),
        route(REFERRAL_VERDICT, handlers.on_verdict, store.transaction),
        route(REFERRAL_REMINDER, handlers.on_reminder, store.transaction),
        route(REFERRAL_EXPIRED, handlers.on_expired, store.transaction),
    ]


__all__ = ["INBOXES_ROUTE", "route_table"]
