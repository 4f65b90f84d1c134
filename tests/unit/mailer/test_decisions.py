"""Which emails an event gives (pure): a referral in an inbox writes to its recipient, an applied step to
the requester; ids are the same for a redelivered event, and differ per event, kind and address."""

from __future__ import annotations

from cepbus.contract import codec
from cepbus.contract.models import ReferralRequested, ReferralStatus
from services.mailer.addresses import AddressBook
from services.mailer.decisions import (
    addressed,
    email_id,
    new_referral_notices,
    referral_of,
    status_changed_notices,
    step_of,
)
from services.mailer.kinds import KINDS, NEW_REFERRAL, STATUS_CHANGED, Party
from services.mailer.rendering import TEMPLATES
from tests.unit.mailer.conftest import BOOK, RECIPIENT, REQUESTER, personal_referral, verdict


def test_a_referral_in_an_inbox_gives_one_email_per_address_of_its_recipient() -> None:
    referral = personal_referral()
    book = AddressBook(
        {RECIPIENT: ("a@tp.example.org", "b@tp.example.org"), REQUESTER: ("c@cep.example.org",)}
    )
    emails, unaddressed = addressed(new_referral_notices(referral), book)
    assert [e.address for e in emails] == ["a@tp.example.org", "b@tp.example.org"] and not unaddressed
    assert {(e.notice.kind, e.notice.org_id, e.notice.party) for e in emails} == {
        (NEW_REFERRAL, RECIPIENT, Party.RECIPIENT)
    }
    assert all(e.notice.cause_event_id == str(referral.event_id) for e in emails)


def test_ids_are_the_same_for_a_redelivered_event_and_differ_per_event_kind_and_address() -> None:
    referral = personal_referral()
    redelivered = codec.decode(codec.encode(referral))
    assert isinstance(redelivered, ReferralRequested)
    first = [e.email_id for e in addressed(new_referral_notices(referral), BOOK)[0]]
    again = [e.email_id for e in addressed(new_referral_notices(redelivered), BOOK)[0]]
    assert first == again and len(first) == 1
    other = [e.email_id for e in addressed(new_referral_notices(personal_referral()), BOOK)[0]]
    assert set(other).isdisjoint(first)
    cause = str(referral.event_id)
    assert email_id(cause, NEW_REFERRAL, "A@Example.org") == email_id(cause, NEW_REFERRAL, "a@example.org")
    assert email_id(cause, NEW_REFERRAL, "a@example.org") != email_id(cause, STATUS_CHANGED, "a@example.org")
    assert email_id(cause, NEW_REFERRAL, "a@example.org") != email_id(cause, NEW_REFERRAL, "b@example.org")


def test_a_step_the_router_applied_tells_the_requester_with_the_status_reached() -> None:
    referral = personal_referral()
    step = step_of(verdict(referral, ReferralStatus.ACCEPTED))
    assert step is not None
    [notice] = status_changed_notices(step, referral_of(referral))
    assert (notice.kind, notice.org_id, notice.status) == (STATUS_CHANGED, REQUESTER, ReferralStatus.ACCEPTED)
    [email] = addressed([notice], BOOK)[0]
    assert email.address == "orientations@cep-ara.example.org"


def test_a_refused_update_and_the_requesters_own_step_tell_nobody() -> None:
    referral = personal_referral()
    assert step_of(verdict(referral, applied=False)) is None
    own = step_of(verdict(referral, ReferralStatus.CANCEL_REQUESTED, signer=REQUESTER))
    assert own is not None and status_changed_notices(own, referral_of(referral)) == []


def test_an_organisation_without_an_address_is_reported_not_written_to() -> None:
    referral = personal_referral(recipient="spro-r84")
    emails, unaddressed = addressed(new_referral_notices(referral), BOOK)
    assert emails == [] and [n.org_id for n in unaddressed] == ["spro-r84"]


def test_the_table_of_kinds_is_the_extension_point_with_a_template_pair_each() -> None:
    assert set(KINDS) == {"new_referral", "status_changed", "reminder", "expired"}
    assert KINDS["reminder"].event == "fr.cepbus.ReferralReminderDue"
    assert KINDS["expired"].topic == "cep.referral.expired"
    for kind in KINDS.values():
        assert kind.parties and all((TEMPLATES / name).is_file() for name in kind.templates), kind.name
