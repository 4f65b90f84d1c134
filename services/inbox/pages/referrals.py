"""The organisation's open referrals, with the reminders due on each (`services/inbox/followup.py`) and,
below them, its referrals the bus closed unanswered (expired, from the read side's export); and one
referral: its state, deadline, signed history, the steps it may take, what became of the steps this
session sent that the router has not applied, and, for its recipient, the person's contact as the
requester sealed it: passed to the page as data, opened by the page's script with the organisation's
key in the browser (`static/referral.js`); this server only ever holds the box."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response

from cepbus.contract.models import ReferralStatus, UpdateVerdict
from cepbus.contract.readside import (
    ExportedReferralView,
    HistoryEntryView,
    ReferralParty,
    ReferralRecordView,
    ReferralView,
)
from cepbus.runtime.logs import get_logger
from services.inbox import followup, steps
from services.inbox.container import Inbox
from services.inbox.pages.answers import Visit
from services.inbox.pages.dependencies import LoggedIn
from services.inbox.pages.reading import read, referral_or_404, verdicts_of
from services.inbox.readside import Unavailable
from services.inbox.sessions import SentUpdate

log = get_logger(service="inbox")
router = APIRouter()


@dataclass(frozen=True)
class ListedReferral:
    """A row of the list, its times in the referral's region."""

    record: ReferralRecordView
    requester: str
    recipient: str
    requested_at: str
    due_day: str
    overdue: bool
    badges: list[followup.Badge]

    @property
    def order(self) -> tuple[bool, int, str]:
        """The nearest deadline first, those without one last."""
        due = self.record.pending_deadline_due_at_ms
        return (due is None, due or 0, self.record.referral_id)


def listed(inbox: Inbox, record: ReferralRecordView, now_ms: int) -> ListedReferral:
    zone = inbox.zone(record.region_code)
    due = record.pending_deadline_due_at_ms
    return ListedReferral(
        record=record,
        requester=inbox.org_name(record.requester_org_id),
        recipient=inbox.org_name(record.recipient_org_id),
        requested_at=steps.french_datetime(record.requested_at_ms, zone),
        due_day=steps.french_due_day(due, zone),
        overdue=due is not None and due <= now_ms,
        badges=followup.badges(record, now_ms, zone, inbox.settings.unanswered_after_days),
    )


@dataclass(frozen=True)
class ExpiredReferral:
    """A referral the bus closed unanswered, its times in its region."""

    record: ReferralRecordView
    requester: str
    recipient: str
    requested_at: str
    received_at: str
    expired_at: str


def expired(visit: Visit) -> list[ExpiredReferral] | None:
    """The organisation's expired referrals, the latest first, from the read side's export; None when
    the export cannot be read (the open referrals are shown all the same)."""
    inbox, session = visit.inbox, visit.session

    def export_or_none() -> list[ExportedReferralView] | None:
        try:
            return inbox.read_side.export(session.org_id, session.token)
        except Unavailable as exc:  # e.g. a router without the export: the open referrals still show
            log.warning("inbox_read_side_unavailable", error=str(exc))
            return None

    lines = read(visit, export_or_none)  # a refused token is still the log-in page
    if lines is None:
        return None
    found = []
    for line in lines:
        record = line.referral
        if record.status != ReferralStatus.EXPIRED:
            continue
        zone = inbox.zone(record.region_code)
        found.append(
            ExpiredReferral(
                record=record,
                requester=inbox.org_name(record.requester_org_id),
                recipient=inbox.org_name(record.recipient_org_id),
                requested_at=steps.french_datetime(record.requested_at_ms, zone),
                received_at=steps.french_datetime(record.received_at_ms, zone),
                expired_at=steps.french_datetime(record.updated_at_ms, zone),
            )
        )
    found.sort(key=lambda row: (-row.record.updated_at_ms, row.record.referral_id))
    return found


@router.get("/referrals")
def referrals(visit: LoggedIn) -> Response:
    inbox, session = visit.inbox, visit.session
    opened = read(visit, lambda: inbox.read_side.open_referrals(session.org_id, session.token))
    now_ms = inbox.now_ms()
    rows = sorted((listed(inbox, record, now_ms) for record in opened), key=lambda row: row.order)
    reminders = {
        kind: sum(1 for row in rows for badge in row.badges if badge.kind == kind)
        for kind in ("deadline_tomorrow", "unanswered")
    }
    return visit.page(
        "referrals.html",
        rows=rows,
        reminders=reminders,
        unanswered_after_days=inbox.settings.unanswered_after_days,
        expired=expired(visit),
    )


@dataclass(frozen=True)
class HistoryRow:
    """An applied update, with its time in the referral's region and its author's name."""

    entry: HistoryEntryView
    at: str
    actor: str


@dataclass(frozen=True)
class BreachRow:
    deadline: str
    day: str


@dataclass(frozen=True)
class RefusedUpdate:
    """An update this session sent that the router refused, with the router's reason."""

    sent: SentUpdate
    code: str
    text: str


def sealed_contact(view: ReferralView, org_id: str) -> dict[str, str] | None:
    """What the page's script needs to open the person's contact, for the referral's recipient only:
    the box as the read side gives it and what it is bound to (HPKE `info`: the referral, both
    organisations, the key id). The clear contact never passes here: the box is opened in the browser."""
    record, sealed = view.referral, view.sealed_contact
    # the read side gives the box to the recipient only; the inbox checks again rather than trusts
    if sealed is None or steps.role_of(view, org_id) != ReferralParty.RECIPIENT:
        return None
    return {
        "referral_id": record.referral_id,
        "requester_org_id": record.requester_org_id,
        "recipient_org_id": record.recipient_org_id,
        "key_id": sealed.recipient_key_id,
        "ciphertext_b64": sealed.ciphertext_b64,
        "ciphertext_sha256_hex": sealed.ciphertext_sha256_hex,
        "key_page": f"/key?next=/referrals/{record.referral_id}",
    }


@router.get("/referrals/{referral_id}")
def referral(visit: LoggedIn, referral_id: str) -> Response:
    inbox, session = visit.inbox, visit.session
    view = referral_or_404(visit, referral_id)
    record = view.referral
    zone = inbox.zone(record.region_code)
    applied = {h.event_id for h in view.history}
    unapplied = [s for s in session.sent if s.referral_id == referral_id and s.event_id not in applied]
    # what the router said of each sent update not in the history: refused (with its reason), or
    # nothing yet (waiting, then, past the window, not judged: the bus is slow or lost it)
    verdicts = read(visit, lambda: verdicts_of(visit, unapplied))
    refused: list[RefusedUpdate] = []
    unjudged: list[SentUpdate] = []
    for sent in unapplied:
        verdict = verdicts.get(sent.event_id)
        if verdict is not None and verdict.verdict == UpdateVerdict.REFUSED:
            reason = verdict.reason_code
            refused.append(RefusedUpdate(sent, reason or "refused", steps.label(steps.REFUSAL_TEXTS, reason)))
        else:  # not judged yet, or judged applied after the view above was read (the next load shows it)
            unjudged.append(sent)
    window, now = inbox.settings.pending_window_s, time.time()
    waiting = [s for s in unjudged if now - s.sent_at < window]
    not_applied = [s for s in unjudged if now - s.sent_at >= window]
    due = record.pending_deadline_due_at_ms
    return visit.page(
        "referral.html",
        record=record,
        requester=inbox.org_name(record.requester_org_id),
        recipient=inbox.org_name(record.recipient_org_id),
        requested_at=steps.french_datetime(record.requested_at_ms, zone),
        due_day=steps.french_due_day(due, zone),
        overdue=due is not None and due <= inbox.now_ms(),
        breaches=[BreachRow(b.deadline, steps.french_due_day(b.due_at_ms, zone)) for b in view.breaches],
        history=[
            HistoryRow(h, steps.french_datetime(h.occurred_at_ms, zone), inbox.org_name(h.actor_org_id))
            for h in view.history
        ],
        offers=[] if waiting else steps.offers(view, session.org_id),
        waiting=waiting,
        not_applied=not_applied,
        refused=refused,
        recipient_view=steps.role_of(view, session.org_id) == ReferralParty.RECIPIENT,
        contact=sealed_contact(view, session.org_id),
    )
