"""Issue #24, item 2, on the session bus: an operator's referral to a local partner (`cep-r84` ->
`transitions-pro-r84`), with the person's contact sealed, a reason and a pseudonym, gives exactly one
`new_referral` email, received by a real SMTP server (aiosmtpd), with the link to the referral in the
partner inbox and its id, and nothing of the person; the partner's receipt, applied by the router, gives
exactly one `status_changed` email to the requester. Nothing of the person reaches the mailer's log."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from cepbus.contract.contact import ContactPreference, ReferralContact
from cepbus.contract.models import OrganisationKind, ReferralRequested, ReferralStatus, new_envelope
from cepbus.reference.directory import load_directory
from cepbus.sdk.contact import attach_contact
from cepbus.sdk.partner import PartnerClient
from cepbus.trust.development import dev_private_key
from services.mailer.store import MailerStore
from tests.integration.conftest import MAIL_INBOX_BASE_URL
from tests.support.bus import RunningBus, dead_letters, wait_for_applied_verdicts, wait_for_ids
from tests.support.mail import MailSink, Received

pytestmark = pytest.mark.integration
OPERATOR = "cep-r84"
PARTNER = "transitions-pro-r84"
REASON = "motif confié : reconversion après un accident du travail"


@dataclass
class Sent:
    referral: ReferralRequested
    contact: ReferralContact


def about(referral_id: str, kind: str) -> Callable[[Received], bool]:
    def select(received: Received) -> bool:
        return received.message["X-CEP-Bus-Kind"] == kind and referral_id in str(received.message["Subject"])

    return select


def sink_of(bus: RunningBus) -> MailSink:
    assert bus.mail is not None, "the session bus runs the mailer with an SMTP server"
    return bus.mail


@pytest.fixture(scope="module")
def sent(bus: RunningBus) -> Sent:
    run = uuid.uuid4().hex[:10]
    contact = ReferralContact(
        first_name=f"Prénommail{run}",
        last_name=f"Nommail{run}",
        phone="+33 6 11 22 33 44",
        email=f"personne-{run}@example.org",
        contact_preference=ContactPreference.TELEPHONE,
        availability=f"le lundi {run}",
        situation=f"situation {run}",
        referent_name=f"Référent {run}",
        referent_contact=f"referent-{run}@cep-exemple.fr",
    )
    referral = ReferralRequested(
        envelope=new_envelope(
            ReferralRequested,
            producer_org_id=OPERATOR,
            person_pseudonym=f"p-mail-{run}",
            occurred_at=datetime.now(UTC),
        ),
        referral_id=str(uuid.uuid4()),
        requester_org_id=OPERATOR,
        recipient_org_id=PARTNER,
        recipient_kind=OrganisationKind.TRANSITIONS_PRO,
        region_code="84",
        reason=REASON,
        consent_to_share=True,
    )
    referral = attach_contact(referral, contact, load_directory())
    with bus.publisher() as publisher:
        publisher.publish(referral)
    assert not wait_for_ids(bus, {str(referral.event_id)})
    return Sent(referral, contact)


def secrets(sent: Sent) -> dict[str, bytes]:
    person = sent.referral.envelope.person_pseudonym
    assert person is not None and sent.referral.sealed_contact is not None
    found = {"pseudonym": person.encode(), "reason": REASON.encode()}
    found |= {
        f"contact {k}": str(v).encode()
        for k, v in sent.contact.model_dump().items()
        if k != "contact_preference"
    }
    found["sealed box"] = sent.referral.sealed_contact.ciphertext[:24]
    return found


def test_a_referral_to_a_local_partner_gives_exactly_one_new_referral_email(
    bus: RunningBus, sent: Sent
) -> None:
    sink = sink_of(bus)
    referral_id = sent.referral.referral_id
    select = about(referral_id, "new_referral")
    [email] = sink.wait_for(1, select, timeout_s=60)
    assert email.recipients == (f"notifications@{PARTNER}.example.invalid",)  # the development address book
    link = f"{MAIL_INBOX_BASE_URL}/referrals/{referral_id}"
    assert link in email.text() and f'href="{link}"' in email.html()
    assert referral_id in email.text() and "Transitions Pro" in email.text()
    raw = email.raw()
    assert not [what for what, secret in secrets(sent).items() if secret in raw]
    time.sleep(3.0)  # a redelivery, a second replica or a retry would have sent it again by now
    assert len(sink.messages(select)) == 1
    with MailerStore(bus.mailer_url) as store:
        assert store.pending() == (0, None)


def test_the_partners_step_gives_exactly_one_status_changed_email_to_the_requester(
    bus: RunningBus, sent: Sent
) -> None:
    sink = sink_of(bus)
    with PartnerClient(PARTNER, dev_private_key(PARTNER), bus.broker, requests=bus.requests) as partner:
        received = partner.update(sent.referral, ReferralStatus.RECEIVED)
        partner.send(received)
    assert not wait_for_applied_verdicts(bus, {str(received.event_id)})
    select = about(sent.referral.referral_id, "status_changed")
    [email] = sink.wait_for(1, select, timeout_s=60)
    assert email.recipients == (f"notifications@{OPERATOR}.example.invalid",)
    assert "réception confirmée" in str(email.message["Subject"])
    assert f"{MAIL_INBOX_BASE_URL}/referrals/{sent.referral.referral_id}" in email.text()
    assert not [what for what, secret in secrets(sent).items() if secret in email.raw()]
    time.sleep(2.0)
    assert len(sink.messages(select)) == 1


def test_the_mailer_dead_letters_nothing_of_this_journey_and_logs_nothing_of_the_person(
    bus: RunningBus, sent: Sent
) -> None:
    journey = sent.referral.envelope.correlation_id
    mine = dead_letters(
        bus, 3.0, where=lambda d: d.service == "mailer" and d.envelope.correlation_id == journey
    )
    assert mine == []  # the router's delivery and its verdicts verified at the mailer's edge
    sink_of(bus).wait_for(1, about(sent.referral.referral_id, "new_referral"), timeout_s=60)
    log = bus.supervisor.processes["mailer"].log_path.read_bytes()
    assert b"email_sent" in log  # the log is the one that sent it
    assert not [what for what, secret in secrets(sent).items() if secret in log]
