"""The mailer's routes through the runtime's processing: each batch's emails go into the mail outbox in
its transaction; a redelivered event adds nothing; a step read before its referral waits for it; an
organisation without an address is counted and logged, the batch goes on; nothing stored to send holds
anything of the person."""

from __future__ import annotations

from cepbus.contract import codec
from cepbus.contract.models import Event, ReferralRequested, ReferralStatus
from cepbus.contract.topics import REFERRAL_VERDICT, referral_inbox
from cepbus.runtime.messages import Incoming
from cepbus.runtime.processing import EventProcessor
from cepbus.runtime.service import Route
from services.mailer.handlers import MailerHandlers
from services.mailer.metrics import UNADDRESSED
from services.mailer.rendering import Renderer
from services.mailer.routes import route_table
from services.mailer.store import MailerStore
from tests.unit.mailer.conftest import (
    BOOK,
    NAMES,
    RECIPIENT,
    REQUESTER,
    Clock,
    personal_referral,
    secrets_of,
    verdict,
)

_offsets = iter(range(10**6))


class Mailer:
    """The route table of a mailer on `store`, run as the drivers run it (decide a batch)."""

    def __init__(self, store: MailerStore, clock: Clock) -> None:
        handlers = MailerHandlers(store, BOOK, Renderer("https://inbox.example.org", NAMES), clock)
        inboxes = [referral_inbox(org) for org in (REQUESTER, RECIPIENT, "spro-r84")]
        self.routes = {spec.name: r for r in route_table(handlers, store, inboxes) for spec in r.topics}
        self.processor = EventProcessor("mailer", "cep-bus-notifier")

    def deliver(self, topic: str, *events: Event) -> list[str]:
        """Decide one batch of `events` read on `topic`; the dead letters' reasons."""
        route: Route = self.routes[topic]
        batch = [Incoming(topic, 0, next(_offsets), e.partition_key(), codec.encode(e)) for e in events]
        return [out.event.reason for out in self.processor.decide(route, batch)]  # type: ignore[attr-defined]


def kinds(store: MailerStore) -> list[tuple[str, str]]:
    return sorted((s.kind, s.org_id) for s in store.states())


def test_a_referral_in_an_inbox_queues_one_email_and_its_redelivery_nothing(
    store: MailerStore, clock: Clock
) -> None:
    mailer = Mailer(store, clock)
    referral = personal_referral()
    inbox = referral_inbox(RECIPIENT).name
    assert mailer.deliver(inbox, referral) == []
    assert mailer.deliver(inbox, referral, referral) == []  # redelivered, twice in one batch
    assert kinds(store) == [("new_referral", RECIPIENT)]
    [pending] = store.claim_due(clock(), 10, 1000)
    assert pending.address == "accueil@tp-ara.example.org" and referral.referral_id in pending.text
    stored = " ".join((pending.subject, pending.text, pending.html))
    assert not [what for what, secret in secrets_of(referral).items() if secret in stored]


def test_a_step_read_before_its_referral_waits_for_it(store: MailerStore, clock: Clock) -> None:
    mailer = Mailer(store, clock)
    referral = personal_referral()
    accepted = verdict(referral, ReferralStatus.ACCEPTED)
    assert mailer.deliver(REFERRAL_VERDICT.name, accepted, verdict(referral, applied=False)) == []
    assert kinds(store) == []  # the requester is not known yet
    assert mailer.deliver(referral_inbox(RECIPIENT).name, referral) == []
    assert kinds(store) == [("new_referral", RECIPIENT), ("status_changed", REQUESTER)]
    completed = verdict(referral, ReferralStatus.COMPLETED)
    own = verdict(referral, ReferralStatus.CANCEL_REQUESTED, signer=REQUESTER)
    assert mailer.deliver(REFERRAL_VERDICT.name, completed, own, accepted) == []
    assert kinds(store) == [
        ("new_referral", RECIPIENT),
        ("status_changed", REQUESTER),
        ("status_changed", REQUESTER),
    ]


def test_an_organisation_without_an_address_is_counted_and_the_batch_goes_on(
    store: MailerStore, clock: Clock
) -> None:
    mailer = Mailer(store, clock)
    before = UNADDRESSED.labels("new_referral", "spro-r84")._value.get()
    lost = personal_referral(recipient="spro-r84")
    found = personal_referral()
    assert mailer.deliver(referral_inbox("spro-r84").name, lost) == []
    assert mailer.deliver(referral_inbox(RECIPIENT).name, found) == []
    assert UNADDRESSED.labels("new_referral", "spro-r84")._value.get() == before + 1
    assert kinds(store) == [("new_referral", RECIPIENT)]


def test_an_event_of_another_type_on_an_inbox_is_a_dead_letter(store: MailerStore, clock: Clock) -> None:
    mailer = Mailer(store, clock)
    referral = personal_referral()
    reasons = mailer.deliver(referral_inbox(RECIPIENT).name, verdict(referral), referral)
    assert [r.split(":")[0] for r in reasons] == ["unexpected_event_type"]
    assert kinds(store) == [("new_referral", RECIPIENT)]
    assert isinstance(referral, ReferralRequested)
