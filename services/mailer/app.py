"""The mailer's wiring, as one `ServiceDefinition` (`python -m services.mailer`): the referrals in the
organisations' inboxes and the router's verdicts in, emails out by SMTP from its mail outbox."""

from __future__ import annotations

from cepbus.contract.topics import ProducerKind, referral_inbox
from cepbus.reference import load_reference
from cepbus.reference.directory import directory_trust_problems, load_directory
from cepbus.runtime.directory_history import DirectoryHistory
from cepbus.runtime.identity import service_identity
from cepbus.runtime.logs import get_logger
from cepbus.runtime.service import ServiceDefinition, Timer
from cepbus.trust.modes import enforce
from services.mailer.addresses import DEVELOPMENT_ADDRESS, address_book, unknown_organisations
from services.mailer.handlers import MailerHandlers
from services.mailer.rendering import Renderer
from services.mailer.routes import route_table
from services.mailer.sending import Backoff, MailSender, SmtpConfig
from services.mailer.settings import MailerSettings
from services.mailer.store import MailerStore

SERVICE = "mailer"


def build_service(settings: MailerSettings | None = None) -> ServiceDefinition:
    settings = settings or MailerSettings()
    reference, directory = load_reference(), load_directory()
    # its dead letters, the only events it sends, are signed in the notifier's role (settings.py)
    identity = service_identity(SERVICE, settings, directory, reference, ProducerKind.NOTIFIER)
    names = {org.org_id: org.name for org in reference.organisations()}
    names |= {entry.org_id: entry.name for entry in directory.entries()}
    org_ids = sorted(names)  # every organisation with an inbox topic (the catalog's)
    book, book_problems = address_book(settings.addresses_path, org_ids)  # a bad file: ValueError
    smtp = SmtpConfig.from_settings(settings)  # a password file that cannot be read: ValueError
    problems = [
        *directory_trust_problems(directory),
        *identity.problems,
        *book_problems,
        *settings.trust_problems(),
    ]
    enforce(problems)  # in production, before the store is opened
    log = get_logger()
    if book.development:
        log.warning("development_addresses", organisations=len(book), address=DEVELOPMENT_ADDRESS)
    for org_id in unknown_organisations(book, org_ids):
        log.warning("address_book_names_an_unknown_organisation", organisation=org_id[:64])
    store = MailerStore(settings.database_url)
    DirectoryHistory(store.database, SERVICE).admit(directory)  # never an older directory
    handlers = MailerHandlers(
        store,
        book,
        Renderer(settings.inbox_base_url, names),
        zone_of=lambda code: reference.region(code).zone,
    )
    sender = MailSender(
        store,
        smtp,
        Backoff(settings.retry_first_s, settings.retry_max_s),
        batch_max=settings.send_batch_max,
        budget_s=settings.send_budget_s,
    )
    inboxes = [referral_inbox(org_id) for org_id in org_ids]
    return ServiceDefinition(
        SERVICE,
        settings,
        route_table(handlers, store, inboxes),
        timers=[Timer("send", settings.send_interval_s, sender.tick)],
        on_stop=[store.close],
        trust_problems=problems,
        signer=identity.signer,
        authorship=identity.authorship,
    )
