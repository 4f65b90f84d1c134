"""The topic catalog: every topic of the bus, its partitions, key, payload and who may write it.

Person-related events are keyed by the person pseudonym, so one person's events stay in order on
one partition. Each organisation has its own referral inbox, which partners subscribe to, and each CEP
operator its own notice inbox: the notices issued for its intakes (the national `cep.notice.issued` is
the router's and the ledger's; it names, for every person, the operators they are told of, which can
reveal a disability, so no operator reads it).

`writers` is the contract of who produces a topic's events: the ledger appends an event only if its
type is the topic's payload and its producer is of a kind allowed to write the topic
(`cepbus.reference.producers`); the Kafka ACLs enforce the same on the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from cepbus.contract.models import (
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
    ReferralExpired,
    ReferralRegulationAlert,
    ReferralReminderDue,
    ReferralRequested,
    ReferralStatusChanged,
    ReferralUpdateRejected,
    ReferralUpdateVerdict,
    RegulationBreach,
    ServiceLevelStarted,
)

PERSON_KEY = "person_pseudonym"
INBOX_PREFIX = "cep.referral.inbox."
NOTICE_INBOX_PREFIX = "cep.notice.inbox."
REJECTIONS_PREFIX = "cep.referral.rejected."


class ProducerKind(enum.StrEnum):
    """Who produces events: an operator's or a partner's information system, or a cep-bus service."""

    OPERATOR = "operator"  # the five kinds of CEP operator (L6111-6)
    PARTNER = "partner"  # local partners of the referral directory
    ROUTER = "router"
    NOTIFIER = "notifier"
    LEDGER = "ledger"
    DEADLETTERS = "deadletters"  # the dead-letter archive (a dead letter of what it cannot read)


OPERATOR, PARTNER = ProducerKind.OPERATOR, ProducerKind.PARTNER
ROUTER, NOTIFIER, LEDGER = ProducerKind.ROUTER, ProducerKind.NOTIFIER, ProducerKind.LEDGER
DEADLETTERS = ProducerKind.DEADLETTERS
#: The bus's own services: only they may sign a dead letter.
SERVICE_KINDS = frozenset({ROUTER, NOTIFIER, LEDGER, DEADLETTERS})


@dataclass(frozen=True)
class TopicSpec:
    name: str
    payload: type[Event]
    key: str
    description: str
    partitions: int | None = None  # None: the bus default (CEPBUS_TOPIC_PARTITIONS)
    writers: frozenset[ProducerKind] = frozenset()

    def partition_count(self, default: int) -> int:
        return self.partitions or default


INTAKE_REGISTERED = TopicSpec(
    "cep.intake.registered",
    IntakeRegistered,
    PERSON_KEY,
    "Intakes published by operator information systems",
    writers=frozenset({OPERATOR}),
)
NOTICE_REQUESTED = TopicSpec(
    "cep.notice.requested",
    NoticeRequested,
    PERSON_KEY,
    "Router decisions: the person must be informed",
    writers=frozenset({ROUTER}),
)
NOTICE_ISSUED = TopicSpec(
    "cep.notice.issued",
    NoticeIssued,
    PERSON_KEY,
    "Informed-choice notices issued",
    writers=frozenset({NOTIFIER}),
)
CHOICE_RECORDED = TopicSpec(
    "cep.choice.recorded",
    ChoiceRecorded,
    PERSON_KEY,
    "The person's choice after a notice",
    writers=frozenset({OPERATOR}),
)
REFERRAL_REQUESTED = TopicSpec(
    "cep.referral.requested",
    ReferralRequested,
    PERSON_KEY,
    "Referrals asked for, before routing",
    writers=frozenset({ROUTER, OPERATOR, PARTNER}),
)
REFERRAL_STATUS = TopicSpec(
    "cep.referral.status",
    ReferralStatusChanged,
    PERSON_KEY,
    "Closed-loop referral status updates",
    writers=frozenset({OPERATOR, PARTNER}),
)
REFERRAL_DEADLINE_BREACHED = TopicSpec(
    "cep.referral.deadline-breached",
    ReferralDeadlineBreached,
    PERSON_KEY,
    "Referral steps that missed their deadline (business days), once per deadline",
    writers=frozenset({ROUTER}),
)
REFERRAL_REMINDER = TopicSpec(
    "cep.referral.reminder",
    ReferralReminderDue,
    PERSON_KEY,
    "Reminders to a referral's recipient: the working day before a deadline, every N days unanswered",
    writers=frozenset({ROUTER}),
)
REFERRAL_EXPIRED = TopicSpec(
    "cep.referral.expired",
    ReferralExpired,
    PERSON_KEY,
    "Referrals the router closed after N days unanswered (status expired, owned by the bus)",
    writers=frozenset({ROUTER}),
)
REFERRAL_ALERT = TopicSpec(
    "cep.referral.alert",
    ReferralRegulationAlert,
    PERSON_KEY,
    "Referral drift: ping-pong, too many referrals",
    writers=frozenset({ROUTER}),
)
DEAD_LETTER = TopicSpec(
    "cep.deadletter",
    DeadLetter,
    "original key",
    "Messages a service could not process, with the reason",
    1,
    writers=SERVICE_KINDS,
)
INTAKE_DECIDED = TopicSpec(
    "cep.intake.decided",
    IntakeDecided,
    PERSON_KEY,
    "Every regulation decision on an intake, with its rules",
    writers=frozenset({ROUTER}),
)
CHOICE_REMINDER = TopicSpec(
    "cep.choice.reminder",
    ChoiceReminderDue,
    PERSON_KEY,
    "No choice recorded within the delay after a notice",
    writers=frozenset({ROUTER}),
)
SERVICE_LEVEL_STARTED = TopicSpec(
    "cep.servicelevel.started",
    ServiceLevelStarted,
    PERSON_KEY,
    "Level 1 / level 2 CEP service started",
    writers=frozenset({OPERATOR}),
)
REGULATION_BREACH = TopicSpec(
    "cep.regulation.breach",
    RegulationBreach,
    PERSON_KEY,
    "Level 2 started before informed choice",
    writers=frozenset({ROUTER}),
)

LEDGER_CHECKPOINTS = TopicSpec(
    "cep.ledger.checkpoints",
    CheckpointPublished,
    "origin",
    "Signed checkpoints of the regulation ledger (not recorded by the ledger itself)",
    1,
    writers=frozenset({LEDGER}),
)

REFERRAL_VERDICT = TopicSpec(
    "cep.referral.verdict",
    ReferralUpdateVerdict,
    PERSON_KEY,
    "The router's verdict on each status update (applied or refused, with the reason), which the ledger "
    "records instead of the update",
    writers=frozenset({ROUTER}),
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
    REFERRAL_VERDICT,
    REFERRAL_REMINDER,
    REFERRAL_EXPIRED,
    LEDGER_CHECKPOINTS,
)

#: What the ledger records: the regulation trail France compétences audits. Every core topic but the
#: dead letters (not regulation events) and the ledger's own checkpoints. The status updates are
#: recorded as their authors signed them; the report counts a step only from the router's verdict
#: (`REFERRAL_VERDICT`) that references the signed update it applies (by its statement digest).
LEDGER_TOPICS: tuple[TopicSpec, ...] = tuple(
    spec for spec in CORE_TOPICS if spec not in (DEAD_LETTER, LEDGER_CHECKPOINTS)
)


def referral_inbox(org_id: str) -> TopicSpec:
    """The topic an organisation reads its incoming referrals from."""
    return TopicSpec(
        f"{INBOX_PREFIX}{org_id}",
        ReferralRequested,
        PERSON_KEY,
        f"Referrals addressed to {org_id}",
        1,
        frozenset({ROUTER}),
    )


def referral_rejections(org_id: str) -> TopicSpec:
    """The topic an organisation reads the router's refusals of its status updates from."""
    return TopicSpec(
        f"{REJECTIONS_PREFIX}{org_id}",
        ReferralUpdateRejected,
        PERSON_KEY,
        f"Status updates of {org_id} the router refused",
        1,
        frozenset({ROUTER}),
    )


def notice_inbox(operator_id: str) -> TopicSpec:
    """The topic a CEP operator reads the notices issued for its own intakes from (to hand them over);
    the router routes each notice of the national topic to its operator's, as it routes referrals."""
    return TopicSpec(
        f"{NOTICE_INBOX_PREFIX}{operator_id}",
        NoticeIssued,
        PERSON_KEY,
        f"Informed-choice notices issued for {operator_id}'s intakes",
        1,
        frozenset({ROUTER}),
    )


def catalog(org_ids: Iterable[str], operator_ids: Iterable[str] = ()) -> list[TopicSpec]:
    """Every topic of the bus for the given organisation directory and CEP operators."""
    ids = sorted(set(org_ids))
    return [
        *CORE_TOPICS,
        *(referral_inbox(org_id) for org_id in ids),
        *(referral_rejections(org_id) for org_id in ids),
        *(notice_inbox(operator_id) for operator_id in sorted(set(operator_ids))),
    ]


_TOPIC_BY_PAYLOAD = {spec.payload: spec for spec in CORE_TOPICS}
_CORE_BY_NAME = {spec.name: spec for spec in CORE_TOPICS}


def core_topic(name: str) -> TopicSpec | None:
    """The core topic of this name (None for a per-organisation topic or an unknown name)."""
    return _CORE_BY_NAME.get(name)


def topic_for(event: Event) -> TopicSpec:
    """The core topic that carries events of this type."""
    try:
        return _TOPIC_BY_PAYLOAD[type(event)]
    except KeyError:
        raise KeyError(f"no core topic carries {type(event).__name__}") from None
