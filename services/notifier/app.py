"""The notifier's wiring, as one `ServiceDefinition` (`python -m services.notifier`)."""

from __future__ import annotations

from cepbus.contract.topics import ProducerKind
from cepbus.reference import load_reference
from cepbus.reference.directory import directory_trust_problems, load_directory
from cepbus.runtime.directory_history import DirectoryHistory
from cepbus.runtime.identity import service_identity
from cepbus.runtime.service import ServiceDefinition
from cepbus.trust.ids import event_id_trust_problems, load_event_ids
from cepbus.trust.modes import enforce
from services.notifier.handlers import NotifierHandlers
from services.notifier.routes import route_table
from services.notifier.settings import NotifierSettings
from services.notifier.store import NotifierStore

SERVICE = "notifier"


def build_service(settings: NotifierSettings | None = None) -> ServiceDefinition:
    settings = settings or NotifierSettings()
    ids = load_event_ids(settings.id_key_path)
    reference, directory = load_reference(), load_directory()
    identity = service_identity(SERVICE, settings, directory, reference, ProducerKind.NOTIFIER)
    problems = [
        *directory_trust_problems(directory),
        *identity.problems,
        *event_id_trust_problems(ids, "CEPBUS_NOTIFIER_ID_KEY_PATH"),
    ]
    enforce(problems)  # in production, before the store is opened
    handlers = NotifierHandlers(reference, settings.service_org_id, ids)
    store = NotifierStore(settings.database_url)
    DirectoryHistory(store.database, SERVICE).admit(directory)  # never an older directory
    return ServiceDefinition(
        SERVICE,
        settings,
        route_table(handlers, store),
        on_stop=[store.close],
        trust_problems=problems,
        signer=identity.signer,
        authorship=identity.authorship,
    )
