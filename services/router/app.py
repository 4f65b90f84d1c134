"""The router's Faust wiring: intakes, notices issued, choices, service levels and referral requests
in; decisions, notice requests, referrals, breaches and reminders out. State in a real database."""

from __future__ import annotations

from datetime import UTC, datetime

import faust

from cepbus.reference import load_reference
from cepbus.settings import BrokerSettings, RouterSettings
from cepbus.streaming import ServiceRuntime, make_app
from cepbus.topics import (
    CHOICE_RECORDED,
    INTAKE_REGISTERED,
    NOTICE_ISSUED,
    SERVICE_LEVEL_STARTED,
)
from services.router.handlers import RouterHandlers
from services.router.referrals import app as referrals
from services.router.store import open_router_store

SERVICE = "router"


def build_app(settings: RouterSettings | None = None, broker: BrokerSettings | None = None) -> faust.App:
    settings = settings or RouterSettings()
    app = make_app(settings, broker or BrokerSettings())
    runtime = ServiceRuntime(SERVICE, settings.service_org_id, app)
    handlers = RouterHandlers(
        load_reference(),
        settings.service_org_id,
        store=open_router_store(settings.database_url),
        choice_reminder_delay_s=settings.choice_reminder_delay_s,
    )
    batch = handlers.store.transaction  # one commit per batch of events, not per event
    runtime.consume(INTAKE_REGISTERED, handlers.on_intake, batch)
    runtime.consume(NOTICE_ISSUED, handlers.on_notice_issued, batch)
    runtime.consume(CHOICE_RECORDED, handlers.on_choice, batch)
    runtime.consume(SERVICE_LEVEL_STARTED, handlers.on_service_level, batch)
    # referral requests: recorded by the lifecycle (#4) and routed to the recipient's inbox in one handler
    referrals.register(app, runtime, handlers.reference, route=handlers.on_referral)

    @app.timer(interval=settings.choice_reminder_check_interval_s)
    async def send_choice_reminders() -> None:
        """No choice recorded within the delay after a notice: one reminder, then never again."""
        now = datetime.now(UTC)
        due = handlers.reminders_due(now)
        if due:
            await runtime.send(due)
            handlers.reminders_sent(due, now)

    return app
