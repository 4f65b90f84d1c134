"""Fixtures of the mailer's tests: its store on both backends, a clock the test moves, events that carry
everything personal a referral can (a pseudonym, a reason, a shared profile, a sealed contact) and an
SMTP server (aiosmtpd) on a free port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cepbus.contract.contact import ContactPreference, ReferralContact
from cepbus.contract.models import (
    OrganisationKind,
    Profile,
    ReferralRequested,
    ReferralStatus,
    ReferralUpdateVerdict,
    UpdateVerdict,
    new_envelope,
)
from cepbus.reference.directory import load_directory
from cepbus.sdk.contact import attach_contact
from services.mailer.addresses import AddressBook
from services.mailer.store import MailerStore
from tests.conftest import free_port
from tests.support.mail import MailSink
from tests.support.postgres import store_url

REQUESTER, RECIPIENT = "cep-r84", "transitions-pro-r84"
NAMES = {REQUESTER: "Opérateur CEP Auvergne-Rhône-Alpes", RECIPIENT: "Transitions Pro Auvergne-Rhône-Alpes"}
BOOK = AddressBook(
    {REQUESTER: ("orientations@cep-ara.example.org",), RECIPIENT: ("accueil@tp-ara.example.org",)}
)
T0 = 1_800_000_000_000  # ms

CONTACT = ReferralContact(
    first_name="Prénomsecret",
    last_name="Nomsecret",
    phone="+33 6 12 34 56 78",
    email="personne.secrete@example.org",
    contact_preference=ContactPreference.EMAIL,
    availability="le jeudi matin seulement",
    situation="situation confiée au conseiller",
    referent_name="Référente Secrète",
    referent_contact="referente.secrete@cep-ara.example.org",
)
REASON = "motif confidentiel de la personne"


class Clock:
    """Milliseconds the test moves by hand."""

    def __init__(self, now_ms: int = T0) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


def personal_referral(recipient: str = RECIPIENT, requester: str = REQUESTER) -> ReferralRequested:
    """A referral carrying all a referral can of the person, its contact sealed to the recipient."""
    person = f"p-secret-{uuid.uuid4().hex[:12]}"
    referral = ReferralRequested(
        envelope=new_envelope(
            ReferralRequested,
            producer_org_id=requester,
            person_pseudonym=person,
            occurred_at=datetime.now(UTC),
        ),
        referral_id=str(uuid.uuid4()),
        requester_org_id=requester,
        recipient_org_id=recipient,
        recipient_kind=OrganisationKind.TRANSITIONS_PRO,
        region_code="84",
        reason=REASON,
        consent_to_share=True,
        shared_profile=Profile(birth_year=1977, cadre=True, boeth=True),
    )
    return attach_contact(referral, CONTACT, load_directory())


def verdict(
    referral: ReferralRequested,
    status: ReferralStatus = ReferralStatus.ACCEPTED,
    signer: str = RECIPIENT,
    applied: bool = True,
) -> ReferralUpdateVerdict:
    return ReferralUpdateVerdict(
        envelope=new_envelope(
            ReferralUpdateVerdict, producer_org_id="cep-bus-router", causation=referral.envelope
        ),
        update_event_id=str(uuid.uuid4()),
        referral_id=referral.referral_id,
        verdict=UpdateVerdict.APPLIED if applied else UpdateVerdict.REFUSED,
        status=status,
        signer_org_id=signer,
        state_before=ReferralStatus.RECEIVED,
        state_after=status if applied else ReferralStatus.RECEIVED,
        claimed_occurred_at=datetime.now(UTC),
    )


def secrets_of(referral: ReferralRequested) -> dict[str, str]:
    """Everything of the person an email must never show."""
    assert referral.sealed_contact is not None and referral.envelope.person_pseudonym
    return {
        "pseudonym": referral.envelope.person_pseudonym,
        "reason": REASON,
        "birth year": "1977",
        "ciphertext (hex)": referral.sealed_contact.ciphertext.hex()[:32],
        "ciphertext digest": referral.sealed_contact.ciphertext_sha256.hex(),
        **{field: str(value) for field, value in CONTACT.model_dump(exclude={"contact_preference"}).items()},
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MailerStore]:
    with store_url(request.param, tmp_path / "mailer.db", "mailer") as url, MailerStore(url) as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def smtp() -> Iterator[MailSink]:
    with MailSink(free_port()) as sink:
        yield sink
