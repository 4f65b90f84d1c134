"""The read side's `steps` are the machine's rules, nothing else: a client that offers exactly them (the
partner inbox) offers every step the router would apply and none it would refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cepbus.contract.models import ReferralStatus
from cepbus.contract.readside import ReferralParty
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from services.router.referrals.auth import TokenBook
from services.router.referrals.http import build_read_side, next_steps
from services.router.referrals.machine import EVENTS, STATES, Actor, Moved, step
from services.router.referrals.store import ReferralStore
from tests.support.authorship import Admitted
from tests.support.factories import MONDAY, referral
from tests.support.fakes import MovableClock


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.value)
def test_the_steps_of_each_state_are_exactly_what_the_machine_applies(state: ReferralStatus) -> None:
    offered = {(s.event.value, s.actor.value): s for s in next_steps(state)}
    for event in EVENTS:
        for actor in Actor:
            entry = offered.get((event.value, actor.value))
            codes = entry.codes if entry else []
            code = codes[0] if codes else None
            moved = step(state, event, actor, code)
            assert isinstance(moved, Moved) == (entry is not None), (state, event, actor, moved)
            if entry is None:
                continue
            assert isinstance(moved, Moved) and entry.to == moved.target
            if codes:  # a coded step without its code, or with another one, is refused
                assert not isinstance(step(state, event, actor, None), Moved)
                assert not isinstance(step(state, event, actor, "not-a-code"), Moved)


def test_a_referral_view_carries_its_steps(tmp_path: Path) -> None:
    store = ReferralStore(f"sqlite:///{tmp_path / 'referrals.db'}")
    try:
        lifecycle = Admitted(store, load_directory(), load_reference(), clock=MovableClock(MONDAY))
        request = referral(requester="cep-r11", recipient="apec-r11")
        lifecycle.on_requested(request)
        app = build_read_side(store, TokenBook.load(None, load_directory().org_ids()))
        view = TestClient(app).get(
            f"/referrals/{request.referral_id}", headers={"Authorization": "Bearer dev-apec-r11"}
        )
        assert view.status_code == 200
        steps = {(s["event"], s["actor"]) for s in view.json()["steps"]}
        assert steps == {
            ("received", "recipient"),
            ("cancel_requested", "requester"),
            ("interim_update", "recipient"),
        }
    finally:
        store.close()


def test_the_contracts_parties_are_the_machines_actors() -> None:
    """The read side names a step's owner with the contract's `ReferralParty`, the machine with its
    `Actor`: the same two values, so a step converts one to the other without a table."""
    assert [p.value for p in ReferralParty] == [a.value for a in Actor]
