"""The mailer's route handlers: an event in, its emails decided, rendered and stored in the mail outbox
in the batch's transaction (the route's), nothing sent on Kafka. The send timer (`sending.py`) sends.

The mailer reads the referrals in the recipients' inboxes and the router's verdicts, two topics in no
set order: a step whose referral it has not seen yet waits in the store (`park`) and gets its emails
when the referral comes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from cepbus.contract.models import (
    ReferralExpired,
    ReferralReminderDue,
    ReferralRequested,
    ReferralUpdateVerdict,
)
from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import Outgoing
from services.mailer.addresses import AddressBook
from services.mailer.decisions import (
    Notice,
    addressed,
    expired_notices,
    new_referral_notices,
    referral_of,
    reminder_notices,
    status_changed_notices,
    step_of,
)
from services.mailer.metrics import EMAILS_QUEUED, UNADDRESSED
from services.mailer.rendering import Renderer
from services.mailer.store import MailerStore, QueuedEmail

log = get_logger()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class MailerHandlers:
    store: MailerStore
    book: AddressBook
    renderer: Renderer
    clock_ms: Callable[[], int] = field(default=now_ms)
    # a region's time zone (for a deadline's last day); Paris when none is given
    zone_of: Callable[[str], ZoneInfo] = field(default=lambda code: ZoneInfo("Europe/Paris"))

    def on_referral(self, event: ReferralRequested) -> list[Outgoing]:
        """A referral in its recipient's inbox: the recipient is told; the steps that waited for it too."""
        referral = referral_of(event)
        person = event.envelope.person_pseudonym
        self.store.remember_referral(referral, person, self.clock_ms())
        found = new_referral_notices(event)
        for step in self.store.take_waiting(referral.referral_id):
            found += status_changed_notices(step, referral)
        self._queue(found, person)
        return []

    def on_reminder(self, event: ReferralReminderDue) -> list[Outgoing]:
        """A reminder the router decided: the recipient is told (the deadline's last day, or the days)."""
        self._queue(reminder_notices(event, self.zone_of(event.region_code)), event.envelope.person_pseudonym)
        return []

    def on_expired(self, event: ReferralExpired) -> list[Outgoing]:
        """A referral the bus closed unanswered: both parties are told."""
        self._queue(expired_notices(event), event.envelope.person_pseudonym)
        return []

    def on_verdict(self, verdict: ReferralUpdateVerdict) -> list[Outgoing]:
        """A step the router applied: the requester is told (a refused update changes nothing)."""
        step = step_of(verdict)
        if step is None:
            return []
        person = verdict.envelope.person_pseudonym
        referral = self.store.referral(step.referral_id)
        if referral is None:
            self.store.park(step, person, self.clock_ms())
            log.info("step_waits_for_its_referral", verdict_event_id=step.event_id)
            return []
        self._queue(status_changed_notices(step, referral), person)
        return []

    def _queue(self, found: Iterable[Notice], person: str | None) -> None:
        """Address, render and store; an organisation without an address is counted and logged, never a
        reason to fail the batch."""
        emails, unaddressed = addressed(found, self.book)
        for notice in unaddressed:
            UNADDRESSED.labels(notice.kind, notice.org_id).inc()
            log.warning("organisation_without_address", kind=notice.kind, organisation=notice.org_id)
        queued = []
        for email in emails:
            rendered = self.renderer.render(email.notice)
            queued.append(
                QueuedEmail(
                    email.email_id,
                    email.notice.kind,
                    email.notice.org_id,
                    email.address,
                    rendered.subject,
                    rendered.text,
                    rendered.html,
                    person,
                )
            )
        for added in self.store.queue(queued, self.clock_ms()):
            EMAILS_QUEUED.labels(added.kind).inc()
            log.info("email_queued", email_id=added.email_id, kind=added.kind, organisation=added.org_id)


__all__ = ["MailerHandlers", "now_ms"]
