"""Which emails an event gives: pure functions, no store, no SMTP.

An email is decided as a `Notice` (what it says, for which organisation) and addressed once per address
of that organisation. A `Notice` has no field that could hold anything of the person (pseudonym, profile,
reason, contact): the templates can only show organisations, the referral id, a status, a deadline, a
count of days and the link, so no email can carry personal data whatever a template says.

Each email's id is derived from the event that caused it, its kind and its address, so a redelivered
event decides the same ids and the outbox, which keeps the first of each, adds nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from cepbus.contract.models import (
    ReferralExpired,
    ReferralReminderDue,
    ReferralRequested,
    ReferralStatus,
    ReferralUpdateVerdict,
    UpdateVerdict,
)
from cepbus.reference.calendar import deadline_last_day
from services.mailer.addresses import AddressBook
from services.mailer.kinds import EXPIRED, KINDS, NEW_REFERRAL, REMINDER, STATUS_CHANGED, Party

#: Namespace of email ids (uuid5 of cause, kind and address).
_EMAIL_ID_NAMESPACE = uuid.UUID("0b4e3f0e-3c1d-5d0c-9a9e-6d1a2f1c7e25")


@dataclass(frozen=True)
class Referral:
    """What the mailer knows of a referral: its id and the organisations at both ends."""

    referral_id: str
    requester_org_id: str
    recipient_org_id: str

    def org_of(self, party: Party) -> str:
        return self.recipient_org_id if party is Party.RECIPIENT else self.requester_org_id


@dataclass(frozen=True)
class Step:
    """A status update the router applied, as its verdict states it."""

    event_id: str  # the verdict's: the cause of the emails it gives
    referral_id: str
    status: ReferralStatus
    signer_org_id: str | None


@dataclass(frozen=True)
class Notice:
    """One email's content, for one organisation: everything a template can show."""

    kind: str
    cause_event_id: str
    referral: Referral
    party: Party
    status: ReferralStatus | None = None
    deadline: date | None = None
    days: int | None = None

    @property
    def org_id(self) -> str:
        """The organisation written to."""
        return self.referral.org_of(self.party)


@dataclass(frozen=True)
class Email:
    email_id: str
    address: str
    notice: Notice


def email_id(cause_event_id: str, kind: str, address: str) -> str:
    """The same cause, kind and address give the same id (addresses compare case-insensitively)."""
    return str(uuid.uuid5(_EMAIL_ID_NAMESPACE, f"{cause_event_id}|{kind}|{address.lower()}"))


def notices(
    kind: str,
    cause_event_id: str,
    referral: Referral,
    *,
    status: ReferralStatus | None = None,
    deadline: date | None = None,
    days: int | None = None,
) -> list[Notice]:
    """One notice per party the kind writes to (`kinds.KINDS`)."""
    return [
        Notice(kind, cause_event_id, referral, party, status, deadline, days) for party in KINDS[kind].parties
    ]


def referral_of(event: ReferralRequested) -> Referral:
    return Referral(event.referral_id, event.requester_org_id, event.recipient_org_id)


def new_referral_notices(event: ReferralRequested) -> list[Notice]:
    """A referral delivered to its recipient's inbox: the recipient is told it has one to handle."""
    return notices(NEW_REFERRAL, str(event.event_id), referral_of(event))


def reminder_notices(event: ReferralReminderDue, zone: ZoneInfo) -> list[Notice]:
    """A reminder the router decided: the recipient is told which deadline falls (its last day, in the
    region's time `zone`) or how many days the referral has waited."""
    referral = Referral(event.referral_id, event.requester_org_id, event.recipient_org_id)
    deadline = None if event.due_at is None else deadline_last_day(event.due_at, zone)
    return notices(REMINDER, str(event.event_id), referral, deadline=deadline, days=event.days_waiting)


def expired_notices(event: ReferralExpired) -> list[Notice]:
    """A referral the bus closed unanswered: both parties are told."""
    referral = Referral(event.referral_id, event.requester_org_id, event.recipient_org_id)
    return notices(
        EXPIRED, str(event.event_id), referral, status=ReferralStatus.EXPIRED, days=event.expired_after_days
    )


def step_of(verdict: ReferralUpdateVerdict) -> Step | None:
    """The applied step a verdict states; None for a refusal (nothing changed, nobody to tell)."""
    if verdict.verdict is not UpdateVerdict.APPLIED:
        return None
    return Step(str(verdict.event_id), verdict.referral_id, verdict.status, verdict.signer_org_id)


def status_changed_notices(step: Step, referral: Referral) -> list[Notice]:
    """The requester is told of each step the recipient took; not of its own (a cancellation it asked)."""
    if step.signer_org_id == referral.requester_org_id:
        return []
    return notices(STATUS_CHANGED, step.event_id, referral, status=step.status)


def addressed(found: Iterable[Notice], book: AddressBook) -> tuple[list[Email], list[Notice]]:
    """(one email per notice and address of its organisation, the notices of organisations without one)."""
    emails: list[Email] = []
    unaddressed: list[Notice] = []
    for notice in found:
        addresses = book.of(notice.org_id)
        if not addresses:
            unaddressed.append(notice)
        emails += [Email(email_id(notice.cause_event_id, notice.kind, a), a, notice) for a in addresses]
    return emails, unaddressed


__all__ = [
    "Email",
    "Notice",
    "Referral",
    "Step",
    "addressed",
    "email_id",
    "new_referral_notices",
    "notices",
    "referral_of",
    "status_changed_notices",
    "step_of",
]
