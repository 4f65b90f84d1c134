"""Faust wiring of the referral lifecycle, registered by `services/router/app.py`:

- `cep.referral.requested`: route to the recipient's inbox (the router's existing handler), then
  start following the referral, in one handler so no status update can overtake its referral;
- `cep.referral.status`: apply signed status updates; a refusal goes to the dead-letter topic and a
  `ReferralUpdateRejected` to the sender's `cep.referral.rejected.<org>` topic;
- a timer sweeps passed deadlines; an HTTP read side starts with the worker.
"""

from __future__ import annotations

import faust

from cepbus.directory import load_directory
from cepbus.logs import get_logger
from cepbus.metrics_domain import REFERRALS_ROUTED
from cepbus.models import ReferralRequested, ReferralStatusChanged
from cepbus.reference import ReferenceData
from cepbus.streaming import Handler, Incoming, Outgoing, ServiceRuntime
from cepbus.topics import REFERRAL_REQUESTED, REFERRAL_STATUS, referral_inbox
from services.router.referrals.handlers import ReferralLifecycle, UpdateRefused
from services.router.referrals.http import serve_read_side
from services.router.referrals.settings import ReferralSettings
from services.router.referrals.store import ReferralStore

log = get_logger()


def handle_status(runtime: ServiceRuntime, lifecycle: ReferralLifecycle, message: Incoming) -> list[Outgoing]:
    """Decode and apply one status update; a refusal yields its dead letter and the sender's rejection."""
    replies: list[Outgoing] = []

    def apply(update: ReferralStatusChanged) -> list[Outgoing]:
        try:
            return lifecycle.on_status(update)
        except UpdateRefused as refused:
            if refused.reply is not None:
                replies.append(refused.reply)
            raise

    return [*runtime.handle(message, ReferralStatusChanged, apply), *replies]


def register(
    app: faust.App,
    runtime: ServiceRuntime,
    reference: ReferenceData,
    route: Handler[ReferralRequested],
    settings: ReferralSettings | None = None,
) -> ReferralLifecycle:
    settings = settings or ReferralSettings()
    store = ReferralStore(settings.database_url)
    lifecycle = ReferralLifecycle(
        store,
        load_directory(),
        reference,
        runtime.producer_org_id,
        deadlines=settings.deadline_policy(),
        drift=settings.drift_policy(),
    )

    directory = lifecycle.directory
    operator_ids = {org.org_id for org in reference.organisations()}

    def route_and_follow(referral: ReferralRequested) -> list[Outgoing]:
        """CEP operators are routed by the router's own handler; local partners of the directory
        (Transitions Pro, OPCO, SPRO...) get their inbox here; anything else is refused by `route`."""
        recipient = referral.recipient_org_id
        if recipient in directory and recipient not in operator_ids:
            REFERRALS_ROUTED.labels(referral.region_code, referral.recipient_kind.value).inc()
            routed = [Outgoing(referral_inbox(recipient).name, referral)]
        else:
            routed = list(route(referral))
        return [*routed, *lifecycle.on_requested(referral)]

    runtime.consume(REFERRAL_REQUESTED, route_and_follow, store.transaction)

    async def statuses(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            m = event.message
            incoming = Incoming(m.topic, m.partition, m.offset, m.key, m.value)
            await runtime.send(handle_status(runtime, lifecycle, incoming))

    app.agent(runtime.raw_topic(REFERRAL_STATUS), name="router.referrals.status")(statuses)

    async def sweep_deadlines() -> None:
        await runtime.send(lifecycle.sweep())

    app.timer(interval=settings.sweep_interval_s, name="router.referrals.deadlines")(sweep_deadlines)

    async def start_read_side() -> None:
        if settings.http_port:
            serve_read_side(ReferralStore(settings.database_url), settings.http_port)
            log.info("referrals_http_started", port=settings.http_port)

    app.task(start_read_side)
    return lifecycle
