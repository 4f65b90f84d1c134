"""The closed-loop referral lifecycle as a pure state machine (ONC 360X, HL7 FHIR SDOH referral Task).

    requested -> received -> accepted | declined (reason code)
    accepted -> appointment_booked -> first_appointment_held | no_show
    first_appointment_held | no_show -> completed (outcome); no_show -> appointment_booked (rebooked)
    any open state -> cancel_requested (requester) -> cancelled (recipient confirms)
    interim_update: any open state, by the recipient, state unchanged

Each transition has exactly one owner, the requester or the recipient. `step` never changes
anything: it says where a (state, event, actor) leads, or why it is refused. `TRANSITIONS` is the
single source of the machine: `cep-bus referral states --json` prints it and the README table is
checked against it by a test.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cepbus.contract.models import ReferralStatus, RefusalReason

S = ReferralStatus


class Actor(enum.StrEnum):
    """The party of the referral an update comes from."""

    REQUESTER = "requester"
    RECIPIENT = "recipient"


#: States of a referral (ReferralStatus minus the pure events `interim_update` and `unknown`).
STATES: tuple[ReferralStatus, ...] = (
    S.REQUESTED,
    S.RECEIVED,
    S.ACCEPTED,
    S.DECLINED,
    S.APPOINTMENT_BOOKED,
    S.FIRST_APPOINTMENT_HELD,
    S.NO_SHOW,
    S.COMPLETED,
    S.CANCEL_REQUESTED,
    S.CANCELLED,
    S.EXPIRED,  # the bus's own step, never announced by a party (services/router/referrals/follow_up.py)
)
#: What a status update may announce (`requested` is the ReferralRequested event itself).
EVENTS: tuple[ReferralStatus, ...] = (
    S.RECEIVED,
    S.ACCEPTED,
    S.DECLINED,
    S.APPOINTMENT_BOOKED,
    S.FIRST_APPOINTMENT_HELD,
    S.NO_SHOW,
    S.COMPLETED,
    S.CANCEL_REQUESTED,
    S.CANCELLED,
    S.INTERIM_UPDATE,
)
TERMINAL: frozenset[ReferralStatus] = frozenset({S.DECLINED, S.COMPLETED, S.CANCELLED, S.EXPIRED})
OPEN: tuple[ReferralStatus, ...] = tuple(state for state in STATES if state not in TERMINAL)

#: Reason codes a decline must carry: the national list (`fr.cepbus.RefusalReason`).
DECLINE_REASONS: frozenset[str] = frozenset(reason.value for reason in RefusalReason)
#: Outcomes a completion must carry.
OUTCOMES: frozenset[str] = frozenset(
    {
        "accompaniment_engaged",
        "training_started",
        "project_validated",
        "redirected",
        "person_withdrew",
        "no_show",
        "other",
    }
)
_REQUIRED_CODES: dict[ReferralStatus, frozenset[str]] = {S.DECLINED: DECLINE_REASONS, S.COMPLETED: OUTCOMES}


@dataclass(frozen=True)
class Transition:
    source: ReferralStatus
    event: ReferralStatus
    actor: Actor
    target: ReferralStatus

    def row(self) -> dict[str, str]:
        return {
            "from": self.source.value,
            "event": self.event.value,
            "actor": self.actor.value,
            "to": self.target.value,
        }


def _build() -> tuple[Transition, ...]:
    rec, req = Actor.RECIPIENT, Actor.REQUESTER
    rows = [
        Transition(S.REQUESTED, S.RECEIVED, rec, S.RECEIVED),
        Transition(S.RECEIVED, S.ACCEPTED, rec, S.ACCEPTED),
        Transition(S.RECEIVED, S.DECLINED, rec, S.DECLINED),
        Transition(S.ACCEPTED, S.APPOINTMENT_BOOKED, rec, S.APPOINTMENT_BOOKED),
        Transition(S.APPOINTMENT_BOOKED, S.FIRST_APPOINTMENT_HELD, rec, S.FIRST_APPOINTMENT_HELD),
        Transition(S.APPOINTMENT_BOOKED, S.NO_SHOW, rec, S.NO_SHOW),
        Transition(S.NO_SHOW, S.APPOINTMENT_BOOKED, rec, S.APPOINTMENT_BOOKED),
        Transition(S.NO_SHOW, S.COMPLETED, rec, S.COMPLETED),
        Transition(S.FIRST_APPOINTMENT_HELD, S.COMPLETED, rec, S.COMPLETED),
    ]
    for state in OPEN:
        if state != S.CANCEL_REQUESTED:
            rows.append(Transition(state, S.CANCEL_REQUESTED, req, S.CANCEL_REQUESTED))
    rows.append(Transition(S.CANCEL_REQUESTED, S.CANCELLED, rec, S.CANCELLED))
    rows.extend(Transition(state, S.INTERIM_UPDATE, rec, state) for state in OPEN)
    return tuple(rows)


TRANSITIONS: tuple[Transition, ...] = _build()
_BY_KEY: dict[tuple[ReferralStatus, ReferralStatus], Transition] = {
    (t.source, t.event): t for t in TRANSITIONS
}
assert len(_BY_KEY) == len(TRANSITIONS), "one owner per (state, event)"


@dataclass(frozen=True)
class Moved:
    target: ReferralStatus
    transition: Transition


@dataclass(frozen=True)
class Refused:
    """Why an update cannot apply; `code` is stable (metrics label, rejection event)."""

    code: str
    detail: str


def step(
    state: ReferralStatus,
    event: ReferralStatus,
    actor: Actor | None,
    reason_code: str | None = None,
    note: str | None = None,
) -> Moved | Refused:
    """Where `event` announced by `actor` leads from `state`; `actor` None means not a party. A decline
    for the reason `other` needs its message (`note`) for the requester."""
    if actor is None:
        return Refused("not_a_party", "the sender is neither the requester nor the recipient of the referral")
    if state in TERMINAL:
        return Refused("terminal_state", f"the referral is {state.value}: no update is accepted")
    transition = _BY_KEY.get((state, event))
    if transition is None:
        return Refused("not_allowed", f"{event.value} is not a step from {state.value}")
    if transition.actor != actor:
        return Refused(
            "wrong_actor",
            f"{event.value} from {state.value} belongs to the {transition.actor.value}, "
            f"not the {actor.value}",
        )
    allowed = _REQUIRED_CODES.get(event)
    if allowed is not None and reason_code not in allowed:
        return Refused(
            "bad_reason_code",
            f"{event.value} needs a reason code among {sorted(allowed)}, got {reason_code!r}",
        )
    if event == S.DECLINED and reason_code == RefusalReason.OTHER and not (note or "").strip():
        return Refused(
            "reason_needs_message", "a decline for the reason 'other' needs a message for the requester"
        )
    return Moved(transition.target, transition)


def machine_rows() -> list[dict[str, str]]:
    """The machine as `{from, event, actor, to}` rows, in definition order."""
    return [t.row() for t in TRANSITIONS]


def markdown_table() -> str:
    """The README's table of the machine, generated from `TRANSITIONS`."""
    lines = ["| from | event | actor | to |", "|---|---|---|---|"]
    lines += [f"| `{t.source}` | `{t.event}` | {t.actor} | `{t.target}` |" for t in TRANSITIONS]
    return "\n".join(lines)
