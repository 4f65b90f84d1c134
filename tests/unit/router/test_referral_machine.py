"""The referral state machine over the full product (state, event, actor), and its documented table."""

from __future__ import annotations

import itertools
import json

import pytest
from typer.testing import CliRunner

from cepbus.contract.models import REFUSAL_REASON_LABELS, ReferralStatus, RefusalReason
from cepbus.contract.schemas import schema_dir
from cepbus_app.cli import app
from services.router.referrals.machine import (
    EVENTS,
    OPEN,
    STATES,
    TERMINAL,
    TRANSITIONS,
    Actor,
    Moved,
    Refused,
    markdown_table,
    step,
)
from tests.support import ROOT

S = ReferralStatus
ALLOWED = {(t.source, t.event, t.actor): t.target for t in TRANSITIONS}
CODES = {S.DECLINED: "session_full", S.COMPLETED: "accompaniment_engaged"}
ACTORS: list[Actor | None] = [Actor.REQUESTER, Actor.RECIPIENT, None]  # None: another organisation


@pytest.mark.parametrize(
    ("state", "event", "actor"),
    list(itertools.product(STATES, EVENTS, ACTORS)),
    ids=lambda v: str(v.value if v is not None else "other-org"),
)
def test_every_state_event_actor_triple(state: S, event: S, actor: Actor | None) -> None:
    result = step(state, event, actor, CODES.get(event))
    if (state, event, actor) in ALLOWED:
        assert isinstance(result, Moved) and result.target == ALLOWED[(state, event, actor)]
    else:
        assert isinstance(result, Refused), f"{state} --{event}/{actor}--> should be refused"
        assert result.code in {"not_a_party", "terminal_state", "not_allowed", "wrong_actor"}


def test_each_state_event_pair_has_one_owner() -> None:
    pairs = [(t.source, t.event) for t in TRANSITIONS]
    assert len(pairs) == len(set(pairs))


def test_the_lifecycle_of_the_issue() -> None:
    path = [
        (S.RECEIVED, Actor.RECIPIENT),
        (S.ACCEPTED, Actor.RECIPIENT),
        (S.APPOINTMENT_BOOKED, Actor.RECIPIENT),
        (S.FIRST_APPOINTMENT_HELD, Actor.RECIPIENT),
        (S.COMPLETED, Actor.RECIPIENT),
    ]
    state = S.REQUESTED
    for event, actor in path:
        moved = step(state, event, actor, CODES.get(event))
        assert isinstance(moved, Moved)
        state = moved.target
    assert state == S.COMPLETED


def test_requester_cancels_any_open_referral_and_recipient_confirms() -> None:
    for state in OPEN:
        if state == S.CANCEL_REQUESTED:
            continue
        asked = step(state, S.CANCEL_REQUESTED, Actor.REQUESTER)
        assert isinstance(asked, Moved) and asked.target == S.CANCEL_REQUESTED
        assert isinstance(step(state, S.CANCEL_REQUESTED, Actor.RECIPIENT), Refused)
    done = step(S.CANCEL_REQUESTED, S.CANCELLED, Actor.RECIPIENT)
    assert isinstance(done, Moved) and done.target == S.CANCELLED


def test_interim_updates_repeat_while_open_and_never_move() -> None:
    for state in OPEN:
        moved = step(state, S.INTERIM_UPDATE, Actor.RECIPIENT)
        assert isinstance(moved, Moved) and moved.target == state
    for state in TERMINAL:
        refused = step(state, S.INTERIM_UPDATE, Actor.RECIPIENT)
        assert isinstance(refused, Refused) and refused.code == "terminal_state"


@pytest.mark.parametrize("event", [S.DECLINED, S.COMPLETED])
def test_decline_and_completion_need_a_known_code(event: S) -> None:
    source = S.RECEIVED if event == S.DECLINED else S.FIRST_APPOINTMENT_HELD
    for code in (None, "because"):
        refused = step(source, event, Actor.RECIPIENT, code)
        assert isinstance(refused, Refused) and refused.code == "bad_reason_code"


def test_cli_prints_the_machine_as_rows() -> None:
    result = CliRunner().invoke(app, ["referral", "states", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows == [t.row() for t in TRANSITIONS]
    assert set(rows[0]) == {"from", "event", "actor", "to"}


def test_the_documented_table_is_the_machine() -> None:
    doc = (ROOT / "docs" / "referrals.md").read_text(encoding="utf-8")
    assert markdown_table() in doc, "docs/referrals.md's table differs: paste `cep-bus referral states`"


def test_a_decline_takes_a_reason_of_the_national_list_and_other_needs_a_message() -> None:
    """Issue #24, item 4: the contract's list (fr.cepbus.RefusalReason), after DORA's and Les Emplois'."""
    avsc = json.loads((schema_dir() / "fr.cepbus.RefusalReason.avsc").read_text(encoding="utf-8"))
    assert avsc["symbols"] == [reason.value for reason in RefusalReason]  # one list: the contract's
    assert set(REFUSAL_REASON_LABELS) == set(RefusalReason)
    for reason in RefusalReason:
        note = "la personne a déménagé" if reason == RefusalReason.OTHER else None
        assert isinstance(step(S.RECEIVED, S.DECLINED, Actor.RECIPIENT, reason.value, note), Moved)
    for code in ("no_capacity", "out_of_public", None, "SESSION_FULL"):  # the old free codes, none, a typo
        refused = step(S.RECEIVED, S.DECLINED, Actor.RECIPIENT, code)
        assert isinstance(refused, Refused) and refused.code == "bad_reason_code"
    for empty in (None, "", "   "):
        refused = step(S.RECEIVED, S.DECLINED, Actor.RECIPIENT, "other", empty)
        assert isinstance(refused, Refused) and refused.code == "reason_needs_message"
