"""The referral lifecycle as the router runs it: events in, events out, state in `ReferralStore`.
No Kafka here (the Faust wiring is `services/router/referrals/app.py`).

A status update goes through, in order: authenticity (signed by the organisation it claims to
come from, with its directory key), dedupe (the same event id and content again is one transition;
the same event id with other content is a replay and refused), the referral (known), the party
(requester or recipient), then the state machine. Any refusal leaves the state unchanged and raises
`UpdateRefused`, which carries the rejection event for the sender.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cepbus.directory import Directory
from cepbus.logs import get_logger
from cepbus.metrics import DUPLICATES
from cepbus.models import (
    Envelope,
    ReferralDeadlineBreached,
    ReferralRegulationAlert,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateRejected,
    derived_event_id,
    new_envelope,
)
from cepbus.reference import ReferenceData
from cepbus.signing import signature_valid
from cepbus.streaming import Outgoing, Rejected
from cepbus.topics import REFERRAL_ALERT, REFERRAL_DEADLINE_BREACHED, referral_rejections
from services.router.referrals import machine
from services.router.referrals.deadlines import Clock, DeadlinePolicy, pending_deadline, system_clock
from services.router.referrals.drift import DriftPolicy, PastReferral, detect
from services.router.referrals.metrics import (
    APPOINTMENT_DELAY,
    DEADLINE_BREACHES,
    REFERRALS_TRACKED,
    REGULATION_ALERTS,
    STATUS_APPLIED,
    UPDATES_REJECTED,
)
from services.router.referrals.store import HistoryEntry, ReferralRecord, ReferralStore

log = get_logger()
SERVICE = "router"


class UpdateRefused(Rejected):
    """A refused status update: dead-lettered with `reason`, and `reply` goes back to the sender."""

    def __init__(self, reason: str, detail: str, reply: Outgoing | None) -> None:
        super().__init__(reason, detail)
        self.reply = reply


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


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


@dataclass
class ReferralLifecycle:
    store: ReferralStore
    directory: Directory
    reference: ReferenceData
    service_org_id: str = "cep-bus-router"
    deadlines: DeadlinePolicy = field(default_factory=DeadlinePolicy)
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    clock: Clock = system_clock

    # -- requests -----------------------------------------------------------------------------

    def on_requested(self, referral: ReferralRequested) -> list[Outgoing]:
        """Start following a routed referral. A redelivered request changes nothing but re-emits the
        same drift alerts (same ids, dropped downstream), so a crash before sending loses none."""
        requested_at = referral.envelope.occurred_at
        zone = self.reference.region(referral.region_code).zone
        due = pending_deadline(
            self.deadlines, ReferralStatus.REQUESTED, requested_at, referral.region_code, zone
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
            requested_at_ms=_ms(requested_at),
            updated_at_ms=_ms(requested_at),
            due_name=due.name if due else None,
            due_at_ms=_ms(due.due_at) if due else None,
        )
        added = self.store.add_referral(record)
        if added:
            REFERRALS_TRACKED.labels(referral.region_code, referral.recipient_kind.value).inc()
        else:
            DUPLICATES.labels(SERVICE).inc()
        if not person:
            return []
        new = PastReferral(
            referral.referral_id, referral.requester_org_id, referral.recipient_org_id, requested_at
        )
        history = [
            PastReferral(r.referral_id, r.requester_org_id, r.recipient_org_id, _from_ms(r.requested_at_ms))
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
                    event_id=derived_event_id(referral.referral_id, f"alert:{alert.alert}"),
                    occurred_at=self.clock(),
                ),
                alert=alert.alert,
                referral_id=referral.referral_id,
                requester_org_id=referral.requester_org_id,
                recipient_org_id=referral.recipient_org_id,
                region_code=referral.region_code,
                related_referral_ids=list(alert.related_referral_ids),
                referrals_in_window=alert.referrals_in_window,
                window_days=self.drift.window_days,
                detail=alert.detail,
            )
            outputs.append(Outgoing(REFERRAL_ALERT.name, event))
        return outputs

    # -- status updates -----------------------------------------------------------------------

    def on_status(self, update: ReferralStatusChanged) -> list[Outgoing]:
        """Apply one status update, or raise `UpdateRefused` (state unchanged)."""
        self._authenticate(update)
        fingerprint = update_fingerprint(update)
        seen = self.store.seen(str(update.event_id))
        if seen is not None:
            if seen.fingerprint != fingerprint:
                raise self._refuse(
                    update, None, "replayed_event_id", "this event id was already used for another update"
                )
            if seen.verdict == "applied":
                DUPLICATES.labels(SERVICE).inc()
                return []
            raise self._refuse(
                update, self.store.get(update.referral_id), seen.reason_code or "refused", seen.detail or ""
            )
        record = self.store.get(update.referral_id)
        if record is None:
            raise self._refuse(
                update, None, "unknown_referral", f"no referral {update.referral_id}", fingerprint
            )
        signer = update.signer_org_id
        actor = (
            machine.Actor.REQUESTER
            if signer == record.requester_org_id
            else machine.Actor.RECIPIENT
            if signer == record.recipient_org_id
            else None
        )
        result = machine.step(record.state, update.status, actor, update.reason_code)
        if isinstance(result, machine.Refused):
            raise self._refuse(update, record, result.code, result.detail, fingerprint)
        return self._apply(update, record, result.target, fingerprint)

    def _authenticate(self, update: ReferralStatusChanged) -> None:
        signer = update.signer_org_id
        if not signer or not update.signature:
            raise self._refuse(
                update, None, "unsigned", "a status update must be signed by the organisation sending it"
            )
        if signer not in self.directory:
            raise self._refuse(update, None, "unknown_signer", f"{signer} is not in the referral directory")
        if signer != update.envelope.producer_org_id or signer != update.actor_org_id:
            raise self._refuse(
                update,
                None,
                "impersonation",
                f"signed by {signer} but produced by {update.envelope.producer_org_id} "
                f"for actor {update.actor_org_id}",
            )
        if not signature_valid(update, self.directory.public_key(signer)):
            raise self._refuse(
                update, None, "bad_signature", f"the signature does not verify with {signer}'s key"
            )

    def _apply(
        self, update: ReferralStatusChanged, record: ReferralRecord, target: ReferralStatus, fingerprint: str
    ) -> list[Outgoing]:
        now = self.clock()
        outputs: list[Outgoing] = []
        zone = self.reference.region(record.region_code).zone
        due = pending_deadline(
            self.deadlines, target, _from_ms(record.requested_at_ms), record.region_code, zone
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
            occurred_at_ms=_ms(update.envelope.occurred_at),
            signer_org_id=update.signer_org_id,
            signature_hex=update.signature.hex() if update.signature else None,
        )
        self.store.apply(
            entry, fingerprint, due.name if due else None, _ms(due.due_at) if due else None, _ms(now)
        )
        STATUS_APPLIED.labels(record.region_code, record.recipient_kind.value, update.status.value).inc()
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
            delay_s = max(0.0, (_ms(update.envelope.occurred_at) - record.requested_at_ms) / 1000)
            APPOINTMENT_DELAY.labels(record.region_code, record.recipient_kind.value).observe(delay_s)
        return outputs

    def _refuse(
        self,
        update: ReferralStatusChanged,
        record: ReferralRecord | None,
        code: str,
        detail: str,
        fingerprint: str | None = None,
    ) -> UpdateRefused:
        """The refusal (recorded when it concerns a genuine update, so a redelivery gets the same verdict)."""
        if fingerprint is not None:
            self.store.record_refusal(str(update.event_id), fingerprint, code, detail)
        UPDATES_REJECTED.labels(code).inc()
        sender = next(
            (
                org
                for org in (update.signer_org_id, update.envelope.producer_org_id)
                if org and org in self.directory
            ),
            None,
        )
        reply = None
        if sender is not None:
            event = ReferralUpdateRejected(
                envelope=new_envelope(
                    ReferralUpdateRejected,
                    producer_org_id=self.service_org_id,
                    causation=update.envelope,
                    event_id=derived_event_id(update.event_id, f"rejected:{code}"),
                    occurred_at=self.clock(),
                ),
                referral_id=update.referral_id,
                rejected_event_id=str(update.event_id),
                sender_org_id=sender,
                attempted_status=update.status,
                current_status=record.state if record else None,
                reason_code=code,
                detail=detail,
            )
            reply = Outgoing(referral_rejections(sender).name, event)
        log.info("referral_update_refused", reason=code, detail=detail, referral_id=update.referral_id)
        return UpdateRefused(code, detail, reply)

    # -- deadlines ----------------------------------------------------------------------------

    def sweep(self) -> list[Outgoing]:
        """Breach events for every deadline passed since the last sweep (each deadline once)."""
        now = self.clock()
        outputs = []
        for record in self.store.overdue(_ms(now)):
            breach = self._breach(record, now)
            if breach is not None:
                outputs.append(breach)
        return outputs

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
            event_id=derived_event_id(record.referral_id, f"deadline-breached:{record.due_name}"),
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
