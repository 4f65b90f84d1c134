"""The router's Faust wiring: intakes, choices and referral requests in; notice requests and
routed referrals out."""

from __future__ import annotations

import faust

from cepbus.reference import load_reference
from cepbus.settings import BrokerSettings, RouterSettings
from cepbus.streaming import ServiceRuntime, make_app
from cepbus.topics import CHOICE_RECORDED, INTAKE_REGISTERED
from services.router.handlers import RouterHandlers
from services.router.referrals import app as referrals

SERVICE = "router"


def build_app(settings: RouterSettings | None = None, broker: BrokerSettings | None = None) -> faust.App:
    settings = settings or RouterSettings()
    app = make_app(settings, broker or BrokerSettings())
    runtime = ServiceRuntime(SERVICE, settings.service_org_id, app)
    handlers = RouterHandlers(load_reference(), settings.service_org_id)
    runtime.consume(INTAKE_REGISTERED, handlers.on_intake)
    runtime.consume(CHOICE_RECORDED, handlers.on_choice)
    referrals.register(app, runtime, handlers.reference, route=handlers.on_referral)  # + lifecycle (#4)
    return app
