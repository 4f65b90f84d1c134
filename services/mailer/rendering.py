"""An email's subject, plain text and HTML, in French, from its `Notice` and the Jinja2 templates of
`templates/` (one pair per kind; the HTML escaped, every name a template uses defined).

The context is built here from the notice alone: organisation names (from the directory), the referral
id, the status reached, a deadline, a count of days and the link to the referral in the partner inbox
(`<inbox base URL>/referrals/<referral id>`, services/inbox/pages/referrals.py). Nothing else reaches a
template, so nothing of the person can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from cepbus.contract.models import ReferralStatus
from services.mailer.decisions import Notice
from services.mailer.kinds import KINDS

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: What a status update did, as the requester reads it ("Orientation ... : acceptée").
STATUS_LABELS: Mapping[ReferralStatus, str] = {
    ReferralStatus.REQUESTED: "demandée",
    ReferralStatus.RECEIVED: "réception confirmée",
    ReferralStatus.ACCEPTED: "acceptée",
    ReferralStatus.DECLINED: "déclinée",
    ReferralStatus.APPOINTMENT_BOOKED: "rendez-vous fixé",
    ReferralStatus.FIRST_APPOINTMENT_HELD: "premier rendez-vous tenu",
    ReferralStatus.NO_SHOW: "absence au rendez-vous",
    ReferralStatus.COMPLETED: "accompagnement terminé",
    ReferralStatus.CANCEL_REQUESTED: "annulation demandée",
    ReferralStatus.CANCELLED: "annulée",
    ReferralStatus.INTERIM_UPDATE: "point d'étape",
    ReferralStatus.EXPIRED: "expirée",
    ReferralStatus.UNKNOWN: "mise à jour",
}
#: The label of a status this table does not know yet (a symbol added to the contract later).
OTHER_STATUS_LABEL = "mise à jour"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class Renderer:
    def __init__(self, inbox_base_url: str, names: Mapping[str, str]) -> None:
        self.inbox_base_url = inbox_base_url.rstrip("/")
        self.names = names
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def name(self, org_id: str) -> str:
        """An organisation's name as the directory gives it (its id if the directory has none)."""
        return self.names.get(org_id, org_id)

    def link(self, referral_id: str) -> str:
        return f"{self.inbox_base_url}/referrals/{quote(referral_id, safe='')}"

    def context(self, notice: Notice) -> dict[str, Any]:
        referral = notice.referral
        return {
            "kind": notice.kind,
            "referral_id": referral.referral_id,
            "org_name": self.name(notice.org_id),
            "requester_name": self.name(referral.requester_org_id),
            "recipient_name": self.name(referral.recipient_org_id),
            "to_requester": notice.org_id == referral.requester_org_id,
            "status_label": STATUS_LABELS.get(notice.status, OTHER_STATUS_LABEL) if notice.status else "",
            "deadline": f"{notice.deadline:%d/%m/%Y}" if notice.deadline else None,
            "days": notice.days,
            "link": self.link(referral.referral_id),
        }

    def render(self, notice: Notice) -> RenderedEmail:
        kind = KINDS[notice.kind]
        context = self.context(notice)
        text_name, html_name = kind.templates
        subject = " ".join(self.env.from_string(kind.subject).render(context).split())
        return RenderedEmail(
            subject=subject,
            text=self.env.get_template(text_name).render(context),
            html=self.env.get_template(html_name).render(context),
        )


__all__ = ["STATUS_LABELS", "TEMPLATES", "RenderedEmail", "Renderer"]
