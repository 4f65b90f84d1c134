"""The kinds of email, one line each: which event on which topic gives it, to whom, with which template.

This table is the extension point; the route table reads the event of each kind:

- `new_referral`: a `ReferralRequested` delivered to an organisation's inbox topic
  (`cep.referral.inbox.<org>`), to that organisation, the recipient;
- `status_changed`: a router verdict (`ReferralUpdateVerdict` on `cep.referral.verdict`) that applied a
  step of the recipient, to the requester.

- `reminder`: a `ReferralReminderDue` on `cep.referral.reminder`, to the recipient, the working day
  before a deadline or every N days without an answer;
- `expired`: a `ReferralExpired` on `cep.referral.expired`, to both parties, N days unanswered.

To wire another:

1. declare the topic in the mailer's wiring (`cepbus/contract/wiring.py`, `_SERVICE_READS["mailer"]`);
2. add a pure function in `decisions.py` turning the event into `Notice`s with `notices(kind, ...)`:
   the referral from the event's `referral_id`, `requester_org_id` and `recipient_org_id`; `deadline`
   from `ReferralReminderDue.due_at` (a date), `days` from its `days_waiting` or from
   `ReferralExpired.expired_after_days`; and a handler method in `handlers.py` that queues them
   (`MailerHandlers._queue`, with the event's pseudonym for erasure);
3. add its line here and to `services/mailer/routes.py` (a test checks that the route table reads
   exactly the kinds' topics).

The templates are `templates/<kind>.txt.j2` and `templates/<kind>.html.j2`; the subject is below. What
they may show is what a `Notice` holds (`decisions.py`): organisations, the referral id, a date, a count
of days, a link; nothing of the person.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from cepbus.contract.models import (
    ReferralExpired,
    ReferralReminderDue,
    ReferralRequested,
    ReferralUpdateVerdict,
)
from cepbus.contract.topics import INBOX_PREFIX, REFERRAL_EXPIRED, REFERRAL_REMINDER, REFERRAL_VERDICT


class Party(enum.StrEnum):
    """Whom an email is for, on the referral it is about."""

    RECIPIENT = "recipient"  # the organisation the person is referred to
    REQUESTER = "requester"  # the organisation that referred them


@dataclass(frozen=True)
class EmailKind:
    name: str
    topic: str  # where its event is read (`*`: one topic per organisation)
    event: str  # the event's type (fr.cepbus.<name>)
    parties: tuple[Party, ...]
    subject: str  # a Jinja2 template over the notice's context (rendering.py)

    @property
    def templates(self) -> tuple[str, str]:
        """(plain text, HTML) template names."""
        return f"{self.name}.txt.j2", f"{self.name}.html.j2"


NEW_REFERRAL = "new_referral"
STATUS_CHANGED = "status_changed"
REMINDER = "reminder"
EXPIRED = "expired"

KINDS: Mapping[str, EmailKind] = {
    kind.name: kind
    for kind in (
        EmailKind(
            NEW_REFERRAL,
            f"{INBOX_PREFIX}*",
            ReferralRequested.avro_name,
            (Party.RECIPIENT,),
            "Nouvelle orientation à traiter ({{ referral_id }})",
        ),
        EmailKind(
            STATUS_CHANGED,
            REFERRAL_VERDICT.name,
            ReferralUpdateVerdict.avro_name,
            (Party.REQUESTER,),
            "Orientation {{ referral_id }} : {{ status_label }}",
        ),
        EmailKind(
            REMINDER,
            REFERRAL_REMINDER.name,
            ReferralReminderDue.avro_name,
            (Party.RECIPIENT,),
            "Rappel : orientation {{ referral_id }} en attente de réponse",
        ),
        EmailKind(
            EXPIRED,
            REFERRAL_EXPIRED.name,
            ReferralExpired.avro_name,
            (Party.REQUESTER, Party.RECIPIENT),
            "Orientation {{ referral_id }} expirée sans réponse",
        ),
    )
}

__all__ = ["EXPIRED", "KINDS", "NEW_REFERRAL", "REMINDER", "STATUS_CHANGED", "EmailKind", "Party"]
