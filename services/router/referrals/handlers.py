"""The referral lifecycle as the router runs it: events in, events out, state in `ReferralStore`.
No Kafka here (the router's route table is `services/router/routes.py`).

A status update goes through, in order: authenticity (signed by the organisation it claims to
come from, with the directory key valid when the bus records it), dedupe scoped to the signer (the same
signer, event id and content again is one transition; the same signer and event id with other content
is a replay, refused), the referral (known), the party (requester or recipient), then the state machine.

Every update gets a verdict, `ReferralUpdateVerdict` (applied, or refused with the reason), which the
ledger records instead of the claim. A refusal leaves the state unchanged and raises `UpdateRefused`
(a dead letter); only an authenticated sender gets a `ReferralUpdateRejected` back, with capped,
sanitised text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cepbus.contract import codec
from cepbus.contract.models import (
    Envelope,
    Event,
    ReferralDeadlineBreached,
    ReferralExpired,
    ReferralRegulationAlert,
    ReferralReminderDue,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateRejected,
    ReferralUpdateVerdict,
    UpdateVerdict,
    new_envelope,
)
from cepbus.contract.statements import statement_digest
from cepbus.contract.topics import (
    REFERRAL_ALERT,
    REFERRAL_DEADLINE_BREACHED,
    REFERRAL_EXPIRED,
    REFERRAL_REMINDER,
    REFERRAL_VERDICT,
    referral_inbox,
    referral_rejections,
)
from cepbus.reference import ReferenceData, ReferenceDataError
from cepbus.reference.directory import Directory
from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import Outgoing, Rejected
from cepbus.runtime.metrics import DUPLICATES
from cepbus.runtime.processing import CURRENT_AUTHOR, forwarded
from cepbus.trust.ids import DEVELOPMENT_IDS, EventIds
from services.router.metrics import (
    APPOINTMENT_DELAY,
    DEADLINE_BREACHES,
    REFERRAL_REMINDERS,
    REFERRALS_EXPIRED,
    REFERRALS_ROUTED,
    REFERRALS_TRACKED,
    REGULATION_ALERTS,
    STATUS_APPLIED,
    UPDATES_REJECTED,
)
from services.router.referrals import machine
from services.router.referrals.deadlines import Clock, DeadlinePolicy, pending_deadline, system_clock
from services.router.referrals.drift import DriftPolicy, PastReferral, detect
from services.router.referrals.follow_up import FollowUpPolicy, Reminder, expires, reminders_due
from services.router.referrals.sealed_contact import contact_problem
from services.router.referrals.store import HistoryEntry, ReferralRecord, ReferralStore

if TYPE_CHECKING:
    from services.router.store import RouterStore

log = get_logger()
SERVICE = "router"


class UpdateRefused(Rejected):
    """A refused status update: dead-lettered with `reason`; its verdict goes to the ledger and `reply`
    (only for an authenticated sender) back to the sender."""

    def __init__(self, reason: str, detail: str, reply: Outgoing | None, verdict: Outgoing) -> None:
        super().__init__(reason, detail, also=[verdict, *([reply] if reply is not None else [])])
        self.reply = reply
        self.verdict = verdict


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


#: Longest detail text sent back to a sender or put in a verdict.
DETAIL_MAX = 200
#: Most related referral ids a drift alert lists (the latest; `referrals_in_window` counts them all):
#: a requester that refers one person thousands of times must not grow one alert past what a message holds.
RELATED_MAX = 20


def sanitised(text: str, limit: int = DETAIL_MAX) -> str:
    """Printable characters only, capped: refusal texts echo values a sender chose."""
    clean = "".join(c if c.isprintable() else " " for c in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def update_fingerprint(update: ReferralStatusChanged) -> str:
    """What makes two deliveries of one event id the same update (the time of sending aside)."""
    parts = (
        update.referral_id,
        update.status.value,
        update.actor_org_id,
        update.reason_code or "",
        update.note or "",
        update.signer_org_id or "",
        update.envelope.producer_org_id,
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


#: Where a referral is handled, for its business-day calendar: a département code, or None (unknown).
DepartementOf = Callable[[ReferralRequested], str | None]


def journey_departement(router: RouterStore) -> DepartementOf:
    """The département of the intake a referral follows from, read in the router's store: the intake
    whose recorded choice caused the referral (the router's own referrals), else the person's latest
    intake in the referral's journey (correlation id); None when the router knows neither.

    `ReferralRequested` carries no département, and the directory gives a recipient's region only
    (an operator's contact point serves the whole region), while the intake says where the person
    was received: the département whose agency takes the referral, hence whose holidays count."""

    def locate(referral: ReferralRequested) -> str | None:
        person = referral.envelope.person_pseudonym
        if not person:
            return None
        intakes = router.intakes_of(person)
        cause = referral.envelope.causation_id
        if cause:
            for intake in intakes:
                if any(c.choice_event_id == cause for c in router.choices(intake.intake_event_id)):
                    return intake.departement_code
        journey = [i for i in intakes if i.correlation_id == referral.envelope.correlation_id]
        return journey[-1].departement_code if journey else None

    return locate


def _signature_hex() -> str | None:
    """The verified author's statement signature (its batch's Ed25519 signature), in hex."""
    author = CURRENT_AUTHOR.get()
    return None if author is None else author.signature.signature.hex()


@dataclass
class ReferralLifecycle:
    store: ReferralStore
    directory: Directory
    reference: ReferenceData
    service_org_id: str = "cep-bus-router"
    deadlines: DeadlinePolicy = field(default_factory=DeadlinePolicy)
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    clock: Clock = system_clock
    ids: EventIds = DEVELOPMENT_IDS  # keyed derivation of the ids of the events it emits
    locate: DepartementOf | None = None  # the département of a referral (None: region calendars)
    follow_up: FollowUpPolicy = field(default_factory=FollowUpPolicy)  # reminders and expiry

    # -- requests -----------------------------------------------------------------------------

    def on_requested(self, referral: ReferralRequested) -> list[Outgoing]:
        """Start following a routed referral, its deadlines counted from now on the router's clock: the
        request's `occurred_at` is the requester's claim, kept and shown, never a clock (backdated by a
        month, it would make the recipient late on arrival). A redelivered request changes nothing
        (its first receipt counts) but re-emits the same drift alerts (same ids, dropped downstream), so
        a crash before sending loses none."""
        received_at = self.clock()
        zone = self.reference.region(referral.region_code).zone
        departement = self._departement(referral)
        due = pending_deadline(
            self.deadlines, ReferralStatus.REQUESTED, received_at, referral.region_code, zone, departement
        )
        person = referral.envelope.person_pseudonym
        earlier = self.store.of_person(person) if person else []
        record = ReferralRecord(
            referral_id=referral.referral_id,
            request_event_id=str(referral.event_id),
            person_pseudonym=person,
            correlation_id=referral.envelope.correlation_id,
            requester_org_id=referral.requester_org_id,
            recipient_org_id=referral.recipient_org_id,
            recipient_kind=referral.recipient_kind,
            region_code=referral.region_code,
            state=ReferralStatus.REQUESTED,
            requested_at_ms=_ms(referral.envelope.occurred_at),
            updated_at_ms=_ms(received_at),
            due_name=due.name if due else None,
            due_at_ms=_ms(due.due_at) if due else None,
            departement_code=departement,
            received_at_ms=_ms(received_at),
        )
        added = self.store.add_referral(record)
        if added and referral.sealed_contact is not None:  # for the recipient's inbox (read side)
            self.store.add_contact(referral.referral_id, referral.sealed_contact)
        if added:
            REFERRALS_TRACKED.labels(referral.region_code, referral.recipient_kind.value).inc()
        else:
            DUPLICATES.labels(SERVICE).inc()
            stored = self.store.get(referral.referral_id)  # a redelivery: its first receipt counts
            received_at = _from_ms(stored.clock_start_ms) if stored is not None else received_at
        if not person:
            return []
        new = PastReferral(
            referral.referral_id, referral.requester_org_id, referral.recipient_org_id, received_at
        )
        history = [
            PastReferral(r.referral_id, r.requester_org_id, r.recipient_org_id, _from_ms(r.clock_start_ms))
            for r in earlier
            if r.referral_id != referral.referral_id
        ]
        outputs = []
        for alert in detect(new, history, self.drift):
            if added:
                REGULATION_ALERTS.labels(alert.alert).inc()
            event = ReferralRegulationAlert(
                envelope=new_envelope(
                    ReferralRegulationAlert,
                    producer_org_id=self.service_org_id,
                    causation=referral.envelope,
                    event_id=self.ids.derive(referral.referral_id, f"alert:{alert.alert}"),
                    occurred_at=self.clock(),
                ),
                alert=alert.alert,
                referral_id=referral.referral_id,
                requester_org_id=referral.requester_org_id,
                recipient_org_id=referral.recipient_org_id,
                region_code=referral.region_code,
                related_referral_ids=list(alert.related_referral_ids[-RELATED_MAX:]),
                referrals_in_window=alert.referrals_in_window,
                window_days=self.drift.window_days,
                detail=alert.detail,
            )
            outputs.append(Outgoing(REFERRAL_ALERT.name, event))
        return outputs

    def _departement(self, referral: ReferralRequested) -> str | None:
        """The département whose calendar the referral's deadlines follow: the one `locate` finds, if
        it lies in the referral's region; else None (the region's calendar)."""
        code = self.locate(referral) if self.locate is not None else None
        if code is None:
            return None
        try:
            found = self.reference.departement(code)
        except ReferenceDataError:
            return None
        return code if found.region_code == referral.region_code else None

    # -- status updates -----------------------------------------------------------------------

    def on_status(self, update: ReferralStatusChanged) -> list[Outgoing]:
        """Apply one status update and return its verdict (and any breach it reveals), or raise
        `UpdateRefused` carrying the refused verdict (state unchanged)."""
        fingerprint = update_fingerprint(update)
        signer, key_id = self._authenticate(update, fingerprint)
        seen = self.store.seen(signer, str(update.event_id))
        if seen is not None:
            if seen.fingerprint != fingerprint:
                detail = "this event id was already used by the signer for another update"
                raise self._refuse(update, fingerprint, None, "replayed_event_id", detail, key_id=key_id)
            DUPLICATES.labels(SERVICE).inc()
            verdict = self._verdict(
                update,
                fingerprint,
                seen.verdict,
                seen.reason_code,
                seen.state_before,
                seen.state_after,
                seen.key_id,
            )
            if seen.verdict == UpdateVerdict.APPLIED.value:
                return [verdict]
            raise self._refused(update, seen.reason_code or "refused", seen.detail or "", verdict, reply=True)
        record = self.store.get(update.referral_id)
        if record is None:
            detail = f"no referral {update.referral_id}"
            raise self._refuse(
                update, fingerprint, None, "unknown_referral", detail, key_id=key_id, remember=True
            )
        actor = (
            machine.Actor.REQUESTER
            if signer == record.requester_org_id
            else machine.Actor.RECIPIENT
            if signer == record.recipient_org_id
            else None
        )
        result = machine.step(record.state, update.status, actor, update.reason_code, update.note)
        if isinstance(result, machine.Refused):
            raise self._refuse(
                update, fingerprint, record, result.code, result.detail, key_id=key_id, remember=True
            )
        return self._apply(update, record, result.target, fingerprint, key_id)

    def _authenticate(self, update: ReferralStatusChanged, fingerprint: str) -> tuple[str, str]:
        """The signer and its directory key, as the runtime verified them at the edge (the statement
        signature of `cepbus.contract.statements`, held to the producer and `actor_org_id` there); an
        update that reached this handler unverified (no runtime in front) is refused, with no reply:
        nobody proved who sent it."""
        author = CURRENT_AUTHOR.get()
        if author is None:
            detail = "a status update must be signed by the organisation sending it"
            raise self._refuse(update, fingerprint, None, "unsigned", detail)
        if author.org_id not in self.directory:
            raise self._refuse(
                update,
                fingerprint,
                None,
                "unknown_signer",
                f"{author.org_id} is not in the referral directory",
            )
        return author.org_id, author.key_id

    def _apply(
        self,
        update: ReferralStatusChanged,
        record: ReferralRecord,
        target: ReferralStatus,
        fingerprint: str,
        key_id: str,
    ) -> list[Outgoing]:
        now = self.clock()
        zone = self.reference.region(record.region_code).zone
        started_at = _from_ms(record.clock_start_ms)  # the router's receipt of the request, not its claim
        due = pending_deadline(
            self.deadlines, target, started_at, record.region_code, zone, record.departement_code
        )
        entry = HistoryEntry(
            referral_id=record.referral_id,
            seq=self.store.next_seq(record.referral_id),
            event_id=str(update.event_id),
            status=update.status,
            state_after=target,
            actor_org_id=update.actor_org_id,
            reason_code=update.reason_code,
            note=update.note,
            occurred_at_ms=_ms(update.envelope.occurred_at),  # the sender's claim, shown beside
            received_at_ms=_ms(now),  # the router's clock: what any timing of the step uses
            signer_org_id=update.envelope.producer_org_id,  # the statement's signer (checked at the edge)
            signature_hex=_signature_hex(),  # its batch signature; the whole proof is in the ledger's leaf
            key_id=key_id,
        )
        due_name, due_at_ms = (due.name, _ms(due.due_at)) if due else (None, None)
        self.store.apply(entry, fingerprint, record.state, due_name, due_at_ms, _ms(now))
        STATUS_APPLIED.labels(record.region_code, record.recipient_kind.value, update.status.value).inc()
        outputs = [
            self._verdict(update, fingerprint, "applied", update.reason_code, record.state, target, key_id)
        ]
        # A step done after its deadline, before a sweep saw it: report that deadline (once), after
        # the state is stored, so a failure above cannot mark a breach that was never emitted.
        if (
            record.due_name
            and record.due_at_ms is not None
            and target != record.state
            and _ms(now) > record.due_at_ms
        ):
            breach = self._breach(record, now)
            if breach is not None:
                outputs.append(breach)
        if update.status == ReferralStatus.FIRST_APPOINTMENT_HELD:
            # measured on the bus's own times, not on the sender's claimed occurred_at
            delay_s = max(0.0, (_ms(now) - record.clock_start_ms) / 1000)
            APPOINTMENT_DELAY.labels(record.region_code, record.recipient_kind.value).observe(delay_s)
        return outputs

    def _verdict(
        self,
        update: ReferralStatusChanged,
        fingerprint: str,
        verdict: str,
        reason_code: str | None,
        before: ReferralStatus | None,
        after: ReferralStatus | None,
        key_id: str | None,
    ) -> Outgoing:
        """The verdict event; its id is keyed on the update's id and content, so a redelivery gives the
        same verdict and another update under the same id another one."""
        applied = verdict == UpdateVerdict.APPLIED.value
        event = ReferralUpdateVerdict(
            envelope=Envelope(
                event_id=self.ids.derive(f"{update.event_id}/{fingerprint}", "referral-verdict"),
                event_type=ReferralUpdateVerdict.avro_name,
                occurred_at=self.clock(),
                producer_org_id=self.service_org_id,
                correlation_id=update.envelope.correlation_id,
                person_pseudonym=update.envelope.person_pseudonym,
                causation_id=str(update.event_id),
            ),
            update_event_id=str(update.event_id),
            referral_id=update.referral_id,
            verdict=UpdateVerdict(verdict),
            status=update.status,
            reason_code=sanitised(reason_code, 64) if reason_code else None,
            signer_org_id=update.envelope.producer_org_id if key_id else None,
            signer_key_id=key_id,
            state_before=before,
            state_after=after,
            claimed_occurred_at=update.envelope.occurred_at,
            # by reference, never embedded: the update itself is in the ledger (cep.referral.status), and
            # a verdict stays small whatever the update carried
            update_digest=statement_digest(codec.encode(update)) if applied else None,
        )
        return Outgoing(REFERRAL_VERDICT.name, event)

    def _refuse(
        self,
        update: ReferralStatusChanged,
        fingerprint: str,
        record: ReferralRecord | None,
        code: str,
        detail: str,
        *,
        key_id: str | None = None,
        remember: bool = False,
    ) -> UpdateRefused:
        """The refusal of an update. An authenticated one (`key_id` set) is answered on the signer's
        rejection topic and, with `remember`, recorded so that a redelivery gets the same verdict; an
        unauthenticated one only gets its verdict and its dead letter."""
        state = record.state if record else None
        if key_id is not None and remember:
            self.store.record_refusal(
                update.envelope.producer_org_id,
                str(update.event_id),
                fingerprint,
                code,
                sanitised(detail),
                state,
                key_id,
            )
        verdict = self._verdict(update, fingerprint, "refused", code, state, state, key_id)
        return self._refused(update, code, detail, verdict, reply=key_id is not None, current=state)

    def _refused(
        self,
        update: ReferralStatusChanged,
        code: str,
        detail: str,
        verdict: Outgoing,
        *,
        reply: bool,
        current: ReferralStatus | None = None,
    ) -> UpdateRefused:
        UPDATES_REJECTED.labels(code).inc()
        answer = None
        signer = update.envelope.producer_org_id  # authenticated when `reply` (the edge checked it)
        if reply:
            event = ReferralUpdateRejected(
                envelope=new_envelope(
                    ReferralUpdateRejected,
                    producer_org_id=self.service_org_id,
                    causation=update.envelope,
                    event_id=self.ids.derive(f"{signer}/{update.event_id}", f"rejected:{code}"),
                    occurred_at=self.clock(),
                ),
                referral_id=sanitised(update.referral_id, 64),
                rejected_event_id=str(update.event_id),
                sender_org_id=signer,
                attempted_status=update.status,
                current_status=current,
                reason_code=code,
                detail=sanitised(detail),
            )
            answer = Outgoing(referral_rejections(signer).name, event)
        log.info(
            "referral_update_refused", reason=code, detail=sanitised(detail), referral_id=update.referral_id
        )
        return UpdateRefused(code, sanitised(detail), answer, verdict)

    # -- deadlines ----------------------------------------------------------------------------

    def sweep(self) -> list[Outgoing]:
        """Breach events for every deadline passed since the last sweep (each deadline once), then the
        follow-up of open referrals: reminders due (each once) and expiries (follow_up.py)."""
        now = self.clock()
        outputs = []
        for record in self.store.overdue(_ms(now)):
            breach = self._breach(record, now)
            if breach is not None:
                outputs.append(breach)
        for record in self.store.open_referrals():
            if expires(record, now, self.follow_up):
                outputs.extend(self._expire(record, now))
                continue
            zone = self.reference.region(record.region_code).zone
            for reminder in reminders_due(record, now, self.follow_up, zone):
                if self.store.mark_reminded(record.referral_id, reminder.key, _ms(now)):
                    outputs.append(self._reminder(record, reminder, now))
        return outputs

    def _follow_up_envelope(
        self, event_type: type[Event], record: ReferralRecord, key: str, now: datetime
    ) -> Envelope:
        return Envelope(
            event_id=self.ids.derive(record.referral_id, key),
            event_type=event_type.avro_name,
            occurred_at=now,
            producer_org_id=self.service_org_id,
            correlation_id=record.correlation_id,
            person_pseudonym=record.person_pseudonym,
            causation_id=record.request_event_id,
        )

    def _reminder(self, record: ReferralRecord, reminder: Reminder, now: datetime) -> Outgoing:
        REFERRAL_REMINDERS.labels(record.recipient_kind.value, reminder.kind.value).inc()
        event = ReferralReminderDue(
            envelope=self._follow_up_envelope(ReferralReminderDue, record, f"reminder:{reminder.key}", now),
            referral_id=record.referral_id,
            requester_org_id=record.requester_org_id,
            recipient_org_id=record.recipient_org_id,
            recipient_kind=record.recipient_kind,
            region_code=record.region_code,
            reminder=reminder.kind,
            deadline=reminder.deadline,
            due_at=reminder.due_at,
            days_waiting=reminder.days_waiting,
            status=record.state,
        )
        log.info("referral_reminder", referral_id=record.referral_id, reminder=reminder.key)
        return Outgoing(REFERRAL_REMINDER.name, event)

    def _expire(self, record: ReferralRecord, now: datetime) -> list[Outgoing]:
        """The bus closes an unanswered referral: its step, then the event both parties are told of."""
        event_id = str(self.ids.derive(record.referral_id, "expired"))
        step = HistoryEntry(
            referral_id=record.referral_id,
            seq=self.store.next_seq(record.referral_id),
            event_id=event_id,
            status=ReferralStatus.EXPIRED,
            state_after=ReferralStatus.EXPIRED,
            actor_org_id=self.service_org_id,
            reason_code=None,
            note=None,
            occurred_at_ms=_ms(now),
            signer_org_id=self.service_org_id,
            signature_hex=None,
            received_at_ms=_ms(now),
        )
        if not self.store.expire(step, _ms(now)):
            return []
        days = self.follow_up.expiry(record.recipient_kind).days
        REFERRALS_EXPIRED.labels(record.recipient_kind.value).inc()
        event = ReferralExpired(
            envelope=self._follow_up_envelope(ReferralExpired, record, "expired", now),
            referral_id=record.referral_id,
            requester_org_id=record.requester_org_id,
            recipient_org_id=record.recipient_org_id,
            recipient_kind=record.recipient_kind,
            region_code=record.region_code,
            status_at_expiry=record.state,
            expired_after_days=days,
            received_at=_from_ms(record.clock_start_ms),
        )
        log.info("referral_expired", referral_id=record.referral_id, after_days=days)
        return [Outgoing(REFERRAL_EXPIRED.name, event)]

    def _breach(self, record: ReferralRecord, now: datetime) -> Outgoing | None:
        assert record.due_name is not None and record.due_at_ms is not None
        if not self.store.mark_breached(record.referral_id, record.due_name, record.due_at_ms):
            return None
        pending = self.deadlines.pending(record.state)
        days = pending[1] if pending else 0
        owner = (
            record.recipient_org_id
            if (pending is None or pending[2] == machine.Actor.RECIPIENT)
            else record.requester_org_id
        )
        DEADLINE_BREACHES.labels(record.region_code, record.recipient_kind.value, record.due_name).inc()
        envelope = Envelope(
            event_id=self.ids.derive(record.referral_id, f"deadline-breached:{record.due_name}"),
            event_type=ReferralDeadlineBreached.avro_name,
            occurred_at=now,
            producer_org_id=self.service_org_id,
            correlation_id=record.correlation_id,
            person_pseudonym=record.person_pseudonym,
            causation_id=record.request_event_id,
        )
        event = ReferralDeadlineBreached(
            envelope=envelope,
            referral_id=record.referral_id,
            requester_org_id=record.requester_org_id,
            recipient_org_id=record.recipient_org_id,
            recipient_kind=record.recipient_kind,
            region_code=record.region_code,
            deadline=record.due_name,
            business_days=days,
            due_at=_from_ms(record.due_at_ms),
            status_at_breach=record.state,
            owner_org_id=owner,
        )
        log.info("referral_deadline_breached", referral_id=record.referral_id, deadline=record.due_name)
        return Outgoing(REFERRAL_DEADLINE_BREACHED.name, event)


@dataclass(frozen=True)
class RequestRouting:
    """`cep.referral.requested`: deliver the referral to its recipient's inbox, then start following it,
    in one handler so that no status update can overtake its referral.

    CEP operators are routed by the router's own handler (`route_to_operator`, which refuses anything
    outside the reference data); local partners of the directory (Transitions Pro, OPCO, SPRO...) get
    their inbox here."""

    lifecycle: ReferralLifecycle
    route_to_operator: Callable[[ReferralRequested], Sequence[Outgoing]]
    operator_ids: frozenset[str]

    def on_requested(self, referral: ReferralRequested) -> list[Outgoing]:
        problem = contact_problem(referral, self.lifecycle.directory, self.lifecycle.clock())
        if problem is not None:  # nothing is delivered nor followed: the requester sees the dead letter
            raise Rejected(*problem)
        recipient = referral.recipient_org_id
        if recipient in self.lifecycle.directory and recipient not in self.operator_ids:
            REFERRALS_ROUTED.labels(referral.region_code, referral.recipient_kind.value).inc()
            routed = [forwarded(referral_inbox(recipient).name, referral)]  # as its author signed it
        else:
            routed = list(self.route_to_operator(referral))
        return [*routed, *self.lifecycle.on_requested(referral)]
