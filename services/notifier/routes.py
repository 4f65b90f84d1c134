"""The notifier's route table.

cep.notice.requested  NoticeRequested  NotifierHandlers.on_notice_requested
"""

from __future__ import annotations

from cepbus.contract.topics import NOTICE_REQUESTED
from cepbus.runtime.service import Route, route
from services.notifier.handlers import NotifierHandlers
from services.notifier.store import NotifierStore


def route_table(handlers: NotifierHandlers, store: NotifierStore) -> list[Route]:
    """Each batch's notices go into the store's outbox in one transaction, then out to the broker."""
    return [route(NOTICE_REQUESTED, handlers.on_notice_requested, store.transaction, outbox=store.outbox)]
