"""The topic catalog: every topic of the bus, its partitions, key and payload, in one place.

Person-related events are keyed by the person pseudonym, so one person's events stay in order on
one partition. Each organisation has its own referral inbox, which partners subscribe to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cepbus.models import (
    CheckpointPublished,
    ChoiceRecorded,
    ChoiceReminderDue,
    DeadLetter,
    Event,
    IntakeDecided,
    IntakeRegistered,
    NoticeIssued,
    NoticeRequested,
    ReferralDeadlineBreached,
    ReferralRegulationAlert,
    ReferralRequested,
    ReferralStatusChanged,
    ReferralUpdateRejected,
    RegulationBreach,
    ServiceLevelStarted,
)

PERSON_KEY = "person_pseudonym"
INBOX_PREFIX = "cep.referral.inbox."
REJECTIONS_PREFIX = "cep.referral.rejected."


@dataclass(frozen=True)
class TopicSpec:
    name: str
    payload: type[Event]
    key: str
    description: str
    partitions: int | None = None  # None: the bus default (CEPBUS_TOPIC_PARTITIONS)

    def partition_count(self, default: int) -> int:
        return self.partitions or default


INTAKE_REGISTERED = TopicSpec(
    "cep.intake.registered", IntakeRegistered, PERSON_KEY, "Intakes published by operator information systems"
)
NOTICE_REQUESTED = TopicSpec(
    "cep.notice.requested", NoticeRequested, PERSON_KEY, "Router decisions: the person must be informed"
)
NOTICE_ISSUED = TopicSpec("cep.notice.issued", NoticeIssued, PERSON_KEY, "Informed-choice notices issued")
CHOICE_RECORDED = TopicSpec(
    "cep.choice.recorded", ChoiceRecorded, PERSON_KEY, "The person's choice after a notice"
)
REFERRAL_REQUESTED = TopicSpec(
    "cep.referral.requested", ReferralRequested, PERSON_KEY, "Referrals asked for, before routing"
)
REFERRAL_STATUS = TopicSpec(
    "cep.referral.status", ReferralStatusChanged, PERSON_KEY, "Closed-loop referral status updates"
)
REFERRAL_DEADLINE_BREACHED = TopicSpec(
    "cep.referral.deadline-breached",
    ReferralDeadlineBreached,
    PERSON_KEY,
    "Referral steps that missed their deadline (business days), once per deadline",
)
REFERRAL_ALERT = TopicSpec(
    "cep.referral.alert", ReferralRegulationAlert, PERSON_KEY, "Referral drift: ping-pong, too many referrals"
)
DEAD_LETTER = TopicSpec(
    "cep.deadletter", DeadLetter, "original key", "Messages a service could not process, with the reason", 1
)
INTAKE_DECIDED = TopicSpec(
    "cep.intake.decided", IntakeDecided, PERSON_KEY, "Every regulation decision on an intake, with its rules"
)
CHOICE_REMINDER = TopicSpec(
    "cep.choice.reminder", ChoiceReminderDue, PERSON_KEY, "No choice recorded within the delay after a notice"
)
SERVICE_LEVEL_STARTED = TopicSpec(
    "cep.servicelevel.started", ServiceLevelStarted, PERSON_KEY, "Level 1 / level 2 CEP service started"
)
REGULATION_BREACH = TopicSpec(
    "cep.regulation.breach", RegulationBreach, PERSON_KEY, "Level 2 started before informed choice"
)

LEDGER_CHECKPOINTS = TopicSpec(
    "cep.ledger.checkpoints",
    CheckpointPublished,
    "origin",
    "Signed checkpoints of the regulation ledger (not recorded by the ledger itself)",
    1,
)

CORE_TOPICS: tuple[TopicSpec, ...] = (
    INTAKE_REGISTERED,
    NOTICE_REQUESTED,
    NOTICE_ISSUED,
    CHOICE_RECORDED,
    REFERRAL_REQUESTED,
    REFERRAL_STATUS,
    DEAD_LETTER,
    INTAKE_DECIDED,
    CHOICE_REMINDER,
    SERVICE_LEVEL_STARTED,
    REGULATION_BREACH,
    REFERRAL_DEADLINE_BREACHED,
    REFERRAL_ALERT,
    LEDGER_CHECKPOINTS,
)

#: What the ledger records: the regulation trail France compétences audits. Every core topic but the
#: dead letters (not regulation events) and the ledger's own checkpoints.
LEDGER_TOPICS: tuple[TopicSpec, ...] = tuple(
    spec for spec in CORE_TOPICS if spec not in (DEAD_LETTER, LEDGER_CHECKPOINTS)
)


def referral_inbox(org_id: str) -> TopicSpec:
    """The topic an organisation reads its incoming referrals from."""
    return TopicSpec(
        f"{INBOX_PREFIX}{org_id}", ReferralRequested, PERSON_KEY, f"Referrals addressed to {org_id}", 1
    )


def referral_rejections(org_id: str) -> TopicSpec:
    """The topic an organisation reads the router's refusals of its status updates from."""
    return TopicSpec(
        f"{REJECTIONS_PREFIX}{org_id}",
        ReferralUpdateRejected,
        PERSON_KEY,
        f"Status updates of {org_id} the router refused",
        1,
    )


def catalog(org_ids: Iterable[str]) -> list[TopicSpec]:
    """Every topic of the bus for the given organisation directory."""
    ids = sorted(set(org_ids))
    return [
        *CORE_TOPICS,
        *(referral_inbox(org_id) for org_id in ids),
        *(referral_rejections(org_id) for org_id in ids),
    ]


_TOPIC_BY_PAYLOAD = {spec.payload: spec for spec in CORE_TOPICS}


def topic_for(event: Event) -> TopicSpec:
    """The core topic that carries events of this type."""
    try:
        return _TOPIC_BY_PAYLOAD[type(event)]
    except KeyError:
        raise KeyError(f"no core topic carries {type(event).__name__}") from None
