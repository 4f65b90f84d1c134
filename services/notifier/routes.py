"""The notifier's route table.

    cep.notice.requested  NoticeRequested  NotifierHandlers.on_notice_requested
"""

from __future__ import annotations

from cepbus.contract.topics import NOTICE_REQUESTED
from cepbus.runtime.service import Route, route
from services.notifier.handlers import NotifierHandlers


def route_table(handlers: NotifierHandlers) -> list[Route]:
    return [route(NOTICE_REQUESTED, handlers.on_notice_requested)]
