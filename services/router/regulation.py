"""The regulation checks after the decision, as pure functions: the level-2 check, overdue choices,
and what a referral may carry. No Kafka, no database: the handlers feed them what the store holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cepbus.contract.models import BreachKind, Choice, NoticeObligation, OrganisationKind, Profile
from services.router.store import AwaitingChoice, ChoiceRecord

__all__ = ["Breach", "check_level_2", "choices_overdue", "notice_obligation", "shared_profile_for"]

#: The operators the regional operator must inform of (the "opérateurs spécialisés").
SPECIALISED_OPERATORS = frozenset(
    {
        OrganisationKind.APEC,
        OrganisationKind.CAP_EMPLOI,
        OrganisationKind.FRANCE_TRAVAIL,
        OrganisationKind.MISSION_LOCALE,
    }
)


def notice_obligation(
    operator_kind: OrganisationKind, inform: Iterable[OrganisationKind]
) -> NoticeObligation:
    """A notice is an obligation only where a text puts one: the regional CEP operator must inform the
    person of the specialised operators whose public they belong to (Code du travail L6111-6, cahier des
    charges of the regional operator). Anywhere else (a specialised operator telling of another, or the
    regional operator telling a public agent it does not serve them) the bus sends it as a courtesy:
    informative, never a regulation breach."""
    if operator_kind == OrganisationKind.REGIONAL_CEP and SPECIALISED_OPERATORS & set(inform):
        return NoticeObligation.MANDATORY
    return NoticeObligation.INFORMATIVE


@dataclass(frozen=True)
class Breach:
    kind: BreachKind
    reason: str


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def check_level_2(
    *,
    notice_due: bool,
    notices_at_ms: Sequence[int],
    choices: Sequence[ChoiceRecord],
    started_at_ms: int,
) -> Breach | None:
    """A level-2 start (accompagnement personnalisé) is a breach when the person had to be informed
    (`notice_due`) and, at the start, no notice had been issued, or no choice had been made (none
    recorded, or the last one recorded before the start is "undecided").

    Judged on event times, not on arrival order: a notice issued after the start does not make the
    start compliant, and a choice recorded after it does not either.

    No clock starts here, so the claimed times stay (issue #23 moved every deadline to the bus's clock):
    the check runs when the router handles the start, over what it had recorded by then, all of which
    the router's clock would put before the start. A claimed time can only exclude a notice or a choice,
    so a start's author can only add a breach against itself by backdating, never hide one; a notice's
    time is the notifier's own clock."""
    if not notice_due:
        return None
    issued_before = [at for at in notices_at_ms if at <= started_at_ms]
    if not issued_before:
        detail = (
            f"the first notice was issued at {_iso(min(notices_at_ms))}, after"
            if notices_at_ms
            else "no informed-choice notice was issued before"
        )
        return Breach(
            BreachKind.NO_NOTICE_ISSUED,
            f"{detail} level 2 started at {_iso(started_at_ms)}; the person had to be informed",
        )
    made_before = [choice for choice in choices if choice.occurred_at_ms <= started_at_ms]
    if not made_before:
        return Breach(
            BreachKind.NO_CHOICE_RECORDED,
            f"no choice recorded before level 2 started at {_iso(started_at_ms)}, although the notice "
            f"was issued at {_iso(issued_before[0])}",
        )
    last = max(made_before, key=lambda choice: (choice.occurred_at_ms, choice.choice_event_id))
    if last.choice == Choice.UNDECIDED:
        return Breach(
            BreachKind.CHOICE_UNDECIDED,
            f"the person's choice was still undecided (recorded at {_iso(last.occurred_at_ms)}) when "
            f"level 2 started at {_iso(started_at_ms)}",
        )
    return None


def choices_overdue(awaiting: Iterable[AwaitingChoice], now_ms: int, delay_ms: int) -> list[AwaitingChoice]:
    """The intakes whose notice is at least `delay_ms` old with still no choice: each gets one reminder.
    Both ends are the bus's clocks: the notice's issue time is the notifier's (it stamps `NoticeIssued`
    when it renders it), `now_ms` the router's; no operator's claim starts this clock."""
    return [item for item in awaiting if now_ms - item.notice_issued_at_ms >= delay_ms]


def shared_profile_for(profile: Profile | None, consent_to_share: bool) -> Profile | None:
    """What a referral may carry of the person's profile: nothing without consent (so never the BOETH
    flag, health data under GDPR art. 9), the profile as decided with it."""
    if not consent_to_share or profile is None:
        return None
    return profile
