"""The router's wiring: its stores, handlers, route table, timers and read side, as one
`ServiceDefinition` that the runtime runs (`python -m services.router`)."""

from __future__ import annotations

from datetime import UTC, datetime

from cepbus.contract.topics import ProducerKind
from cepbus.reference import load_reference
from cepbus.reference.directory import directory_trust_problems, load_directory
from cepbus.runtime.directory_history import DirectoryHistory
from cepbus.runtime.identity import service_identity
from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import Outgoing
from cepbus.runtime.service import ServiceDefinition, Timer
from cepbus.trust.ids import event_id_trust_problems, load_event_ids
from cepbus.trust.modes import enforce
from services.router.handlers import RouterHandlers
from services.router.referrals.auth import TokenBook, read_side_trust_problems
from services.router.referrals.handlers import ReferralLifecycle, RequestRouting, journey_departement
from services.router.referrals.http import serve_read_side
from services.router.referrals.store import ReferralStore
from services.router.routes import route_table
from services.router.settings import ReferralSettings, RouterSettings
from services.router.store import RouterStore

SERVICE = "router"
log = get_logger()


def build_service(
    settings: RouterSettings | None = None, referral_settings: ReferralSettings | None = None
) -> ServiceDefinition:
    settings = settings or RouterSettings()
    referral_settings = referral_settings or ReferralSettings()
    reference = load_reference()
    ids = load_event_ids(settings.id_key_path)
    directory = load_directory()
    identity = service_identity(SERVICE, settings, directory, reference, ProducerKind.ROUTER)
    problems = [
        *directory_trust_problems(directory),
        *identity.problems,
        *event_id_trust_problems(ids, "CEPBUS_ROUTER_ID_KEY_PATH"),
        *(read_side_trust_problems(referral_settings.tokens_path) if referral_settings.http_port else []),
    ]
    enforce(problems)  # in production, before any store is opened
    tokens = TokenBook.load(referral_settings.tokens_path, directory.org_ids())
    handlers = RouterHandlers(
        reference,
        settings.service_org_id,
        store=RouterStore(settings.database_url, busy_timeout_s=settings.sqlite_busy_timeout_s),
        choice_reminder_delay_s=settings.choice_reminder_delay_s,
        ids=ids,
    )
    DirectoryHistory(handlers.store.database, SERVICE).admit(directory)  # never an older directory
    referral_store = ReferralStore(referral_settings.database_url)
    lifecycle = ReferralLifecycle(
        referral_store,
        directory,
        reference,
        settings.service_org_id,
        deadlines=referral_settings.deadline_policy(),
        drift=referral_settings.drift_policy(),
        follow_up=referral_settings.follow_up_policy(),
        ids=ids,
        locate=journey_departement(handlers.store),  # the intake's département: its holidays count
    )
    requests = RequestRouting(
        lifecycle, handlers.on_referral, frozenset(org.org_id for org in reference.organisations())
    )

    def choice_reminders() -> list[Outgoing]:
        """No choice recorded within the delay after a notice: one reminder, then never again. Marked
        in the transaction that stores the reminder in the outbox, so it is sent once, and surely."""
        now = datetime.now(UTC)
        due = handlers.reminders_due(now)
        handlers.reminders_sent(due, now)
        return due

    # the read side's own connection, opened here with the others (a start hook only serves it), so
    # a database that is away at that moment fails the start, not a running worker
    read_store = ReferralStore(referral_settings.database_url) if referral_settings.http_port else None

    def start_read_side() -> None:
        if read_store is not None:
            serve_read_side(
                read_store,
                referral_settings.http_port,
                tokens,
                referral_settings.http_host,
            )
            log.info(
                "referrals_http_started", host=referral_settings.http_host, port=referral_settings.http_port
            )

    return ServiceDefinition(
        SERVICE,
        settings,
        route_table(handlers, requests, lifecycle),
        timers=[
            Timer(
                "choice_reminders",
                settings.choice_reminder_check_interval_s,
                choice_reminders,
                transaction=handlers.store.transaction,
                outbox=handlers.store.outbox,
            ),
            Timer(
                "referral_deadlines",
                referral_settings.sweep_interval_s,
                lifecycle.sweep,
                transaction=referral_store.transaction,
                outbox=referral_store.outbox,
            ),
        ],
        on_start=[start_read_side],
        on_stop=[handlers.store.close, referral_store.close, *([read_store.close] if read_store else [])],
        trust_problems=problems,
        silence_seed=handlers.store.silence_seed,
        signer=identity.signer,
        authorship=identity.authorship,
    )
