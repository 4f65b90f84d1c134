"""The notifier's Faust wiring: notice requests in, notices issued out."""

from __future__ import annotations

import faust

from cepbus.reference import load_reference
from cepbus.settings import BrokerSettings, NotifierSettings
from cepbus.streaming import ServiceRuntime, make_app
from cepbus.topics import NOTICE_REQUESTED
from services.notifier.handlers import NotifierHandlers

SERVICE = "notifier"


def build_app(settings: NotifierSettings | None = None, broker: BrokerSettings | None = None) -> faust.App:
    settings = settings or NotifierSettings()
    app = make_app(settings, broker or BrokerSettings())
    runtime = ServiceRuntime(SERVICE, settings.service_org_id, app)
    handlers = NotifierHandlers(load_reference(), settings.service_org_id)
    runtime.consume(NOTICE_REQUESTED, handlers.on_notice_requested)
    return app
