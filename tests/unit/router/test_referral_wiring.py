"""The router's status-update path as its route runs it (decode, apply, dead letter + rejection),
without a broker; and the example partner's plan."""

from __future__ import annotations

from pathlib import Path

from cepbus.contract import codec
from cepbus.contract.models import DeadLetter, ReferralStatus, ReferralStatusChanged, ReferralUpdateRejected
from cepbus.contract.topics import DEAD_LETTER, REFERRAL_VERDICT, referral_rejections
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.runtime.messages import Incoming
from cepbus.runtime.processing import EventProcessor
from cepbus_app.demo.partner import plan_steps
from services.router.referrals.handlers import ReferralLifecycle
from services.router.referrals.store import ReferralStore
from tests.support.authorship import Admitted
from tests.support.factories import MONDAY, RECIPIENT, referral, update
from tests.support.fakes import MovableClock


def handle_status(runtime: EventProcessor, lifecycle: ReferralLifecycle, message: Incoming) -> list:  # type: ignore[type-arg]
    """As the router's route table runs `cep.referral.status` (services/router/routes.py)."""
    return runtime.handle(message, ReferralStatusChanged, lifecycle.on_status)


def test_refused_update_gives_a_dead_letter_and_a_rejection(tmp_path: Path) -> None:
    store = ReferralStore(f"sqlite:///{tmp_path / 'r.db'}")
    lifecycle = Admitted(store, load_directory(), load_reference(), clock=MovableClock(MONDAY))
    runtime = EventProcessor("router", "cep-bus-router")
    ref = referral()
    lifecycle.on_requested(ref)
    ok = Incoming("cep.referral.status", 0, 1, b"p-test", codec.encode(update(ref, ReferralStatus.RECEIVED)))
    [applied] = handle_status(runtime, lifecycle, ok)
    assert applied.topic == REFERRAL_VERDICT.name and applied.event.verdict == "applied"
    early = update(ref, ReferralStatus.COMPLETED, reason_code="accompaniment_engaged")
    bad = Incoming("cep.referral.status", 0, 2, b"p-test", codec.encode(early))
    verdict, reply, letter = handle_status(runtime, lifecycle, bad)  # verdict, rejection, dead letter
    assert verdict.topic == REFERRAL_VERDICT.name and verdict.event.verdict == "refused"
    assert verdict.event.reason_code == "not_allowed" and verdict.event.signed_update is None
    assert letter.topic == DEAD_LETTER.name and isinstance(letter.event, DeadLetter)
    assert letter.event.reason.startswith("not_allowed") and letter.event.original_value == bad.value
    assert reply.topic == referral_rejections(RECIPIENT).name
    assert isinstance(reply.event, ReferralUpdateRejected) and reply.event.rejected_event_id == str(
        early.event_id
    )
    garbage = Incoming("cep.referral.status", 0, 3, b"p-test", b"not an avro event at all")
    [only_letter] = handle_status(runtime, lifecycle, garbage)
    assert isinstance(only_letter.event, DeadLetter) and only_letter.event.reason.startswith("bad_marker")
    assert store.get(ref.referral_id).state == ReferralStatus.RECEIVED  # type: ignore[union-attr]
    store.close()


def test_example_partner_plan_is_deterministic_and_follows_the_refusal_rate() -> None:
    ids = [f"ref-{n}" for n in range(400)]
    plans = [plan_steps(i, 1.0, 0.25, seed=3) for i in ids]
    assert plans == [plan_steps(i, 1.0, 0.25, seed=3) for i in ids]
    declined = sum(1 for plan in plans if plan[-1].status == ReferralStatus.DECLINED)
    assert 60 < declined < 140  # about 25 % of 400
    accepted = next(plan for plan in plans if plan[-1].status == ReferralStatus.COMPLETED)
    assert [s.status for s in accepted] == [
        ReferralStatus.RECEIVED,
        ReferralStatus.ACCEPTED,
        ReferralStatus.APPOINTMENT_BOOKED,
        ReferralStatus.FIRST_APPOINTMENT_HELD,
        ReferralStatus.COMPLETED,
    ]
    assert [s.after_s for s in accepted] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(plan_steps(i, 0.0, 0.0, 1)[-1].status == ReferralStatus.COMPLETED for i in ids[:50])
