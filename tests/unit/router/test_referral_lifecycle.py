"""The referral lifecycle in the router, without a broker: signatures, dedupe and replays, refusals
with a rejection for the sender, deadlines with a moved clock, ping-pong; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cepbus.contract import codec
from cepbus.contract.models import (
    OrganisationKind,
    ReferralDeadlineBreached,
    ReferralRegulationAlert,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateRejected,
)
from cepbus.contract.topics import (
    REFERRAL_ALERT,
    REFERRAL_DEADLINE_BREACHED,
    REFERRAL_VERDICT,
    core_topic,
    referral_rejections,
)
from cepbus.reference import load_reference
from cepbus.reference.authorship import AuthorshipError
from cepbus.reference.directory import load_directory
from cepbus.runtime.messages import Outgoing
from services.router.referrals.deadlines import DeadlinePolicy
from services.router.referrals.drift import DriftPolicy
from services.router.referrals.handlers import ReferralLifecycle, UpdateRefused
from services.router.referrals.store import ReferralStore
from tests.support.authorship import Admitted, authorship, signed_headers
from tests.support.factories import MONDAY, RECIPIENT, REQUESTER, referral, update
from tests.support.fakes import MovableClock

S = ReferralStatus


@pytest.fixture
def lifecycle(store: ReferralStore, clock: MovableClock) -> ReferralLifecycle:
    return Admitted(
        store,
        load_directory(),
        load_reference(),
        deadlines=DeadlinePolicy(2, 5, 15),
        drift=DriftPolicy(window_days=90, max_referrals=3),
        clock=clock,
    )


def state(lifecycle: ReferralLifecycle, ref: ReferralRequested) -> S:
    record = lifecycle.store.get(ref.referral_id)
    assert record is not None
    return record.state


def applied(outputs: list[Outgoing]) -> list[Outgoing]:
    """The outputs of an applied update: its verdict first (checked), then what else it caused."""
    verdict, *rest = outputs
    assert verdict.topic == REFERRAL_VERDICT.name and verdict.event.verdict == "applied"  # type: ignore[attr-defined]
    return rest


def refused(lifecycle: ReferralLifecycle, event: ReferralStatusChanged) -> UpdateRefused:
    with pytest.raises(UpdateRefused) as caught:
        lifecycle.on_status(event)
    return caught.value


def unverified(lifecycle: ReferralLifecycle, event: ReferralStatusChanged) -> UpdateRefused:
    """The router's own refusal of an update that reached it with no author verified at the edge."""
    with pytest.raises(UpdateRefused) as caught:
        ReferralLifecycle.on_status(lifecycle, event)
    return caught.value


def edge(event: ReferralStatusChanged, key_of: str | None = None, value: bytes | None = None) -> str:
    """The reason the runtime's edge refuses `event` signed by `key_of` (sent as `value` if given)."""
    [(_, header)] = signed_headers([event], key_of)
    with pytest.raises(AuthorshipError) as caught:
        found = authorship().verify(codec.encode(event) if value is None else value, header)
        authorship().judge(event, found, core_topic("cep.referral.status"))
    return caught.value.reason


def test_full_lifecycle_with_history_and_signatures(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    assert lifecycle.on_requested(ref) == []
    steps = [
        (S.RECEIVED, None),
        (S.ACCEPTED, None),
        (S.INTERIM_UPDATE, None),
        (S.APPOINTMENT_BOOKED, None),
        (S.INTERIM_UPDATE, None),
        (S.FIRST_APPOINTMENT_HELD, None),
        (S.COMPLETED, "accompaniment_engaged"),
    ]
    for status, code in steps:
        assert applied(lifecycle.on_status(update(ref, status, reason_code=code))) == []
    assert state(lifecycle, ref) == S.COMPLETED
    history = lifecycle.store.history(ref.referral_id)
    assert [h.status for h in history] == [s for s, _ in steps]
    assert all(
        h.signer_org_id == RECIPIENT and h.signature_hex and len(h.signature_hex) == 128 for h in history
    )
    assert lifecycle.store.open_for(RECIPIENT) == []


def test_decline_with_reason(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    lifecycle.on_status(update(ref, S.RECEIVED))
    lifecycle.on_status(update(ref, S.DECLINED, reason_code="session_full"))
    assert state(lifecycle, ref) == S.DECLINED
    assert lifecycle.store.history(ref.referral_id)[-1].reason_code == "session_full"


def test_requester_cancels_and_recipient_confirms(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    lifecycle.on_status(update(ref, S.RECEIVED))
    lifecycle.on_status(update(ref, S.CANCEL_REQUESTED, sender=REQUESTER))
    lifecycle.on_status(update(ref, S.CANCELLED))
    assert state(lifecycle, ref) == S.CANCELLED


def test_a_refused_transition_changes_nothing_and_answers_the_sender(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    early = update(ref, S.ACCEPTED)  # accepted before received
    refusal = refused(lifecycle, early)
    assert refusal.reason == "not_allowed"
    assert state(lifecycle, ref) == S.REQUESTED and lifecycle.store.history(ref.referral_id) == []
    assert refusal.reply is not None and refusal.reply.topic == referral_rejections(RECIPIENT).name
    reply = refusal.reply.event
    assert isinstance(reply, ReferralUpdateRejected)
    assert reply.rejected_event_id == str(early.event_id) and reply.reason_code == "not_allowed"
    assert reply.current_status == S.REQUESTED and reply.attempted_status == S.ACCEPTED
    # the refused event redelivered gets the same verdict, even once the state would allow it
    lifecycle.on_status(update(ref, S.RECEIVED))
    assert refused(lifecycle, early).reason == "not_allowed"
    assert state(lifecycle, ref) == S.RECEIVED


def test_the_wrong_party_is_refused(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    assert refused(lifecycle, update(ref, S.RECEIVED, sender=REQUESTER)).reason == "wrong_actor"
    outsider = refused(lifecycle, update(ref, S.RECEIVED, sender="opco-sante"))
    assert outsider.reason == "not_a_party"
    assert outsider.reply is not None and outsider.reply.topic == referral_rejections("opco-sante").name
    assert state(lifecycle, ref) == S.REQUESTED


def test_same_event_twice_is_one_transition(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    received = update(ref, S.RECEIVED)
    lifecycle.on_status(received)
    assert applied(lifecycle.on_status(received)) == []  # the same verdict again, nothing else
    # the same update re-sent later (new time, so other bytes and another statement signature when
    # admitted; same event id and content): still one
    again = update(ref, S.RECEIVED, at=MONDAY + timedelta(hours=1))
    again = again.model_copy(
        update={"envelope": again.envelope.model_copy(update={"event_id": received.event_id})}
    )
    assert codec.encode(again) != codec.encode(received)
    assert applied(lifecycle.on_status(again)) == []
    assert len(lifecycle.store.history(ref.referral_id)) == 1


# -- authenticity ---------------------------------------------------------------------------------


def test_valid_signature_is_accepted(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    lifecycle.on_status(update(ref, S.RECEIVED))
    assert state(lifecycle, ref) == S.RECEIVED


def test_unsigned_update_is_refused(lifecycle: ReferralLifecycle) -> None:
    """At the edge (no signature header), and by the router itself when nothing verified its author."""
    ref = referral()
    lifecycle.on_requested(ref)
    with pytest.raises(AuthorshipError, match="unsigned"):
        authorship().verify(codec.encode(update(ref, S.RECEIVED)), None)
    assert unverified(lifecycle, update(ref, S.RECEIVED)).reason == "unsigned"
    assert state(lifecycle, ref) == S.REQUESTED


def test_wrong_key_is_refused(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    forged = update(ref, S.RECEIVED)  # claims apec-r11, signed below with another organisation's key
    assert edge(forged, key_of="cap-emploi-r11") == "misattributed"
    assert state(lifecycle, ref) == S.REQUESTED


def test_tampered_content_breaks_the_signature(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    lifecycle.on_status(update(ref, S.RECEIVED))
    signed = update(ref, S.DECLINED, reason_code="session_full")
    tampered = signed.model_copy(update={"reason_code": "not_eligible"})
    assert codec.encode(tampered) != codec.encode(signed)
    assert edge(signed, value=codec.encode(tampered)) == "bad_signature"
    assert state(lifecycle, ref) == S.RECEIVED


def test_impersonation_is_refused(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    # opco-sante signs with its own valid key but says it acts for the recipient
    mine = update(ref, S.RECEIVED, sender="opco-sante")
    posing = mine.model_copy(update={"actor_org_id": RECIPIENT})
    assert edge(posing) == "claim_mismatch"
    stranger = update(ref, S.RECEIVED, sender="not-in-directory")
    assert edge(stranger) == "unknown_key"
    assert state(lifecycle, ref) == S.REQUESTED


def test_replayed_event_id_with_other_content_is_refused(lifecycle: ReferralLifecycle) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    received = update(ref, S.RECEIVED)
    lifecycle.on_status(received)
    # a validly signed update that reuses an event id already applied, for another step
    reuse = update(ref, S.ACCEPTED)
    reuse = reuse.model_copy(
        update={"envelope": reuse.envelope.model_copy(update={"event_id": received.event_id})}
    )
    assert refused(lifecycle, reuse).reason == "replayed_event_id"
    assert state(lifecycle, ref) == S.RECEIVED
    # a signature lifted onto another event does not verify
    [(_, header)] = signed_headers([received])
    with pytest.raises(AuthorshipError, match="bad_signature"):
        authorship().verify(codec.encode(update(ref, S.ACCEPTED)), header)


def test_update_for_unknown_referral_is_refused(lifecycle: ReferralLifecycle) -> None:
    ghost = referral()  # never requested
    assert refused(lifecycle, update(ghost, S.RECEIVED)).reason == "unknown_referral"


# -- deadlines ------------------------------------------------------------------------------------


def _breaches(outputs: list[Outgoing]) -> list[ReferralDeadlineBreached]:
    found = [o.event for o in outputs if o.topic == REFERRAL_DEADLINE_BREACHED.name]
    assert all(isinstance(e, ReferralDeadlineBreached) for e in found)
    return found  # type: ignore[return-value]


def test_deadline_breach_once_then_on_the_next_deadline(
    lifecycle: ReferralLifecycle, clock: MovableClock
) -> None:
    ref = referral()  # Monday 2 March: received due end of Wednesday 4 (Paris), answered end of Monday 9
    lifecycle.on_requested(ref)
    clock.now = datetime(2026, 3, 4, 22, 30, tzinfo=UTC)  # Wednesday 23:30 Paris: still in time
    assert _breaches(lifecycle.sweep()) == []
    clock.now = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)  # Thursday 00:30 Paris: late
    [breach] = _breaches(lifecycle.sweep())
    assert breach.deadline == "received" and breach.business_days == 2
    assert breach.due_at == datetime(2026, 3, 4, 23, 0, tzinfo=UTC)
    assert breach.owner_org_id == RECIPIENT and breach.status_at_breach == S.REQUESTED
    clock.now += timedelta(days=1)
    assert _breaches(lifecycle.sweep()) == []  # once
    # the late receipt does not report the same deadline again
    assert applied(lifecycle.on_status(update(ref, S.RECEIVED))) == []
    clock.now = datetime(2026, 3, 9, 22, 0, tzinfo=UTC)  # Monday 9, 23:00 Paris: answer still in time
    assert _breaches(lifecycle.sweep()) == []
    clock.now = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    [second] = _breaches(lifecycle.sweep())
    assert second.deadline == "answered" and second.business_days == 5
    assert second.envelope.event_id != breach.envelope.event_id
    assert lifecycle.store.count_breaches([ref.referral_id]) == 2


def test_public_holidays_are_not_business_days(lifecycle: ReferralLifecycle, clock: MovableClock) -> None:
    # Thursday 7 May 2026; Friday 8 May is a holiday: received is due end of Tuesday 12 May, not Monday 11
    clock.now = datetime(2026, 5, 7, 8, 0, tzinfo=UTC)  # the router receives it then
    ref = referral(at=clock.now)
    lifecycle.on_requested(ref)
    clock.now = datetime(2026, 5, 12, 12, 0, tzinfo=UTC)
    assert _breaches(lifecycle.sweep()) == []
    clock.now = datetime(2026, 5, 13, 8, 0, tzinfo=UTC)
    [breach] = _breaches(lifecycle.sweep())
    assert breach.due_at == datetime(2026, 5, 12, 22, 0, tzinfo=UTC)


def test_a_late_step_reports_its_deadline_when_no_sweep_saw_it(
    lifecycle: ReferralLifecycle, clock: MovableClock
) -> None:
    ref = referral()
    lifecycle.on_requested(ref)
    clock.now = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)  # Friday: receipt two days late
    [breach] = _breaches(lifecycle.on_status(update(ref, S.RECEIVED)))
    assert breach.deadline == "received"
    assert state(lifecycle, ref) == S.RECEIVED
    assert _breaches(lifecycle.sweep()) == []


# -- drift ----------------------------------------------------------------------------------------


def test_ping_pong_raises_an_alert(lifecycle: ReferralLifecycle) -> None:
    away = referral(REQUESTER, RECIPIENT, person="p-bounce")
    assert lifecycle.on_requested(away) == []
    back = referral(
        RECIPIENT,
        REQUESTER,
        person="p-bounce",
        at=MONDAY + timedelta(days=3),
        kind=OrganisationKind.REGIONAL_CEP,
    )
    [out] = lifecycle.on_requested(back)
    assert out.topic == REFERRAL_ALERT.name
    alert = out.event
    assert isinstance(alert, ReferralRegulationAlert)
    assert alert.alert == "ping_pong" and alert.related_referral_ids == [away.referral_id]
    # redelivered: the same alert again (same event id, dropped downstream), no new referral
    [again] = lifecycle.on_requested(back)
    assert again.event.event_id == alert.event_id
    assert len(lifecycle.store.of_person("p-bounce")) == 2


def test_too_many_referrals_in_the_window(lifecycle: ReferralLifecycle) -> None:
    recipients = ["apec-r11", "cap-emploi-r11", "france-travail-r11", "mission-locale-r11"]
    alerts: list[str] = []
    for n, recipient in enumerate(recipients):
        ref = referral(REQUESTER, recipient, person="p-drift", at=MONDAY + timedelta(days=n))
        alerts += [o.event.alert for o in lifecycle.on_requested(ref)]  # type: ignore[attr-defined]
    assert alerts == ["too_many_referrals"]  # the 4th, over max 3
    late = referral(REQUESTER, "apec-r11", person="p-drift-other", at=MONDAY + timedelta(days=200))
    assert lifecycle.on_requested(late) == []


def test_only_an_authenticated_sender_is_answered_and_with_sanitised_text(
    lifecycle: ReferralLifecycle,
) -> None:
    """A rejection notice goes to the sender's rejection topic: an unsigned or forged update claims any
    organisation, so it gets no answer (only its verdict and dead letter); an authenticated one is
    answered, and the values it chose come back printable and capped."""
    ref = referral()
    lifecycle.on_requested(ref)
    assert unverified(lifecycle, update(ref, S.RECEIVED)).reply is None  # nobody proved who sent it
    assert edge(update(ref, S.RECEIVED), key_of="cap-emploi-r11") == "misattributed"  # never reaches it
    nasty = "\x1b[31msession_full\r\n" + "x" * 45  # a code at its bound (64), with control characters
    with pytest.raises(ValueError, match="at most 64 characters"):  # a longer one never gets this far
        update(ref, S.DECLINED, reason_code=nasty + "x")
    early = update(ref, S.DECLINED, reason_code=nasty)  # declined before received: refused, answered
    refusal = refused(lifecycle, early)
    assert refusal.reply is not None and refusal.reply.topic == referral_rejections(RECIPIENT).name
    reply = refusal.reply.event
    assert isinstance(reply, ReferralUpdateRejected)
    for text in (reply.detail, reply.reason_code or ""):
        assert text.isprintable() and len(text) <= 200 and "\x1b" not in text
