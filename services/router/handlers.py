"""The router's decisions as plain functions: event in, events out. No Kafka here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cepbus.contract.models import (
    Choice,
    ChoiceRecorded,
    ChoiceReminderDue,
    DecisionStatus,
    Envelope,
    IntakeDecided,
    IntakeRegistered,
    NoticeIssued,
    NoticeObligation,
    NoticeRequested,
    ReferralRequested,
    RegulationBreach,
    ServiceLevel,
    ServiceLevelStarted,
    derived_envelope,
)
from cepbus.contract.rule_ids import PUBLIC_AGENT_RULE
from cepbus.contract.topics import (
    CHOICE_REMINDER,
    INTAKE_DECIDED,
    NOTICE_REQUESTED,
    REFERRAL_REQUESTED,
    REGULATION_BREACH,
    notice_inbox,
    referral_inbox,
)
from cepbus.reference import ReferenceData, ReferenceDataError
from cepbus.runtime.logs import get_logger
from cepbus.runtime.messages import Outgoing, Rejected
from cepbus.runtime.processing import forwarded
from cepbus.trust.ids import DEVELOPMENT_IDS, EventIds
from services.router.metrics import (
    CHOICE_REMINDERS,
    CHOICES_RECORDED,
    INTAKE_DECISIONS,
    NOTICES_REQUESTED,
    REFERRALS_ROUTED,
    REGULATION_BREACHES,
)
from services.router.regulation import check_level_2, choices_overdue, notice_obligation, shared_profile_for
from services.router.rules import RULESET_VERSION, Decision, decide
from services.router.store import RouterStore, to_ms

log = get_logger()


def _memory_store() -> RouterStore:
    return RouterStore("sqlite:///:memory:")


@dataclass(frozen=True)
class RouterHandlers:
    reference: ReferenceData
    service_org_id: str = "cep-bus-router"
    store: RouterStore = field(default_factory=_memory_store)
    choice_reminder_delay_s: float = 7 * 24 * 3600.0
    ids: EventIds = DEVELOPMENT_IDS  # keyed derivation of the ids of the events it emits

    def on_intake(self, intake: IntakeRegistered) -> list[Outgoing]:
        """Every intake yields its recorded decision; one whose person must be informed of other
        operators, or told that this operator does not serve them (public agents), also yields a
        notice request. A rejected intake is recorded as such and goes to the dead letters."""
        decision = decide(intake, self.reference)
        INTAKE_DECISIONS.labels(intake.region_code, intake.operator_kind.value, decision.status).inc()
        notice_due = decision.status != "rejected" and bool(
            decision.inform or PUBLIC_AGENT_RULE in decision.rules
        )
        obligation = notice_obligation(intake.operator_kind, decision.inform) if notice_due else None
        self.store.record_intake(
            intake,
            status=decision.status,
            notice_due=notice_due,
            rules=decision.rules,
            ruleset_version=decision.ruleset_version,
            reference_version=decision.reference_version,
            notice_obligation=obligation,
        )
        decided = Outgoing(INTAKE_DECIDED.name, self._decided(intake, decision, notice_due, obligation))
        if decision.status == "rejected":
            raise Rejected(
                "intake_rejected", decision.rejection_reason or "rejected by the rules", also=[decided]
            )
        if not notice_due:
            return [decided]
        request = NoticeRequested(
            envelope=derived_envelope(
                NoticeRequested, intake, "notice-requested", producer_org_id=self.service_org_id, ids=self.ids
            ),
            intake_event_id=str(intake.event_id),
            operator_id=intake.operator_id,
            operator_kind=intake.operator_kind,
            region_code=intake.region_code,
            departement_code=intake.departement_code,
            channel=intake.channel,
            inform=list(decision.inform),
            rules=list(decision.rules),
            ruleset_version=decision.ruleset_version,
            reference_version=decision.reference_version,
            intake_occurred_at=intake.envelope.occurred_at,
            obligation=obligation or NoticeObligation.INFORMATIVE,
        )
        NOTICES_REQUESTED.labels(intake.region_code).inc()
        return [decided, Outgoing(NOTICE_REQUESTED.name, request)]

    def _decided(
        self,
        intake: IntakeRegistered,
        decision: Decision,
        notice_due: bool,
        obligation: NoticeObligation | None,
    ) -> IntakeDecided:
        return IntakeDecided(
            envelope=derived_envelope(
                IntakeDecided, intake, "intake-decided", producer_org_id=self.service_org_id, ids=self.ids
            ),
            intake_event_id=str(intake.event_id),
            operator_id=intake.operator_id,
            operator_kind=intake.operator_kind,
            region_code=intake.region_code,
            departement_code=intake.departement_code,
            status=DecisionStatus(decision.status),
            competent_operator=decision.competent_operator,
            inform=list(decision.inform),
            notice_due=notice_due,
            rules=list(decision.rules),
            reasons=list(decision.reasons),
            missing_fields=list(decision.missing_fields),
            rejection_reason=decision.rejection_reason,
            ruleset_version=decision.ruleset_version,
            reference_version=decision.reference_version,
            notice_obligation=obligation,
        )

    def on_notice_issued(self, notice: NoticeIssued) -> list[Outgoing]:
        """The router remembers which notices were issued, and when (the level-2 check needs it), and
        routes each to the notice inbox of the operator who hands it over: the national topic names, for
        every person, the operators they are told of, and is no operator's to read."""
        self.store.record_notice(notice)
        try:
            self.reference.organisation(notice.operator_id)
        except ReferenceDataError:  # no inbox topic exists for it: never block the partition on one
            log.warning("notice_for_unknown_operator", operator_id=notice.operator_id)
            return []
        return [forwarded(notice_inbox(notice.operator_id).name, notice)]  # as the notifier signed it

    def on_choice(self, choice: ChoiceRecorded) -> list[Outgoing]:
        """The choice is remembered; choosing another operator makes a referral to that operator in
        the person's region, carrying the intake's profile only with the person's consent."""
        self.store.record_choice(choice)
        CHOICES_RECORDED.labels(choice.region_code, choice.choice.value).inc()
        if choice.choice != Choice.SWITCH or choice.chosen_operator_kind is None:
            return []
        try:
            recipient = self.reference.operator_for(choice.chosen_operator_kind, choice.region_code)
        except (KeyError, ReferenceDataError) as exc:
            raise Rejected("no_recipient", str(exc)) from exc
        intake = self.store.intake(choice.intake_event_id)
        shared = shared_profile_for(intake.profile if intake else None, choice.consent_to_share)
        reason = "choix éclairé: the person chose this operator after the informed-choice notice"
        if intake is None and choice.consent_to_share:
            reason += " (the intake is unknown to the router: no profile to share)"
        referral_id = self.ids.derive(choice.event_id, "referral")
        referral = ReferralRequested(
            envelope=derived_envelope(
                ReferralRequested,
                choice,
                "referral-requested",
                producer_org_id=self.service_org_id,
                ids=self.ids,
            ),
            referral_id=str(referral_id),
            requester_org_id=choice.operator_id,
            recipient_org_id=recipient.org_id,
            recipient_kind=recipient.kind,
            region_code=choice.region_code,
            reason=reason,
            consent_to_share=choice.consent_to_share,
            shared_profile=shared,
        )
        return [Outgoing(REFERRAL_REQUESTED.name, referral)]

    def on_service_level(self, started: ServiceLevelStarted) -> list[Outgoing]:
        """A level-2 start for a person who had to be informed, before a notice was issued or a
        choice made, is a regulation breach. Level 1 is only remembered."""
        intake = self.store.intake(started.intake_event_id)
        if intake is None:
            raise Rejected(
                "unknown_intake", f"service level for intake {started.intake_event_id}, never registered"
            )
        if started.level != ServiceLevel.LEVEL_2:
            self.store.record_service_level(started, None)
            return []
        breach = check_level_2(
            notice_due=intake.notice_is_obligation,  # a courtesy notice never makes a breach
            notices_at_ms=self.store.notices_at_ms(intake.intake_event_id),
            choices=self.store.choices(intake.intake_event_id),
            started_at_ms=to_ms(started.envelope.occurred_at),
        )
        self.store.record_service_level(started, breach.kind if breach else None)
        if breach is None:
            return []
        REGULATION_BREACHES.labels(started.region_code, started.operator_kind.value, breach.kind.value).inc()
        event = RegulationBreach(
            envelope=derived_envelope(
                RegulationBreach,
                started,
                "regulation-breach",
                producer_org_id=self.service_org_id,
                ids=self.ids,
            ),
            service_level_event_id=str(started.event_id),
            intake_event_id=started.intake_event_id,
            operator_id=started.operator_id,
            operator_kind=started.operator_kind,
            region_code=started.region_code,
            breach=breach.kind,
            reason=breach.reason,
            ruleset_version=RULESET_VERSION,
        )
        return [Outgoing(REGULATION_BREACH.name, event)]

    def reminders_due(self, now: datetime) -> list[Outgoing]:
        """One reminder per intake whose notice is older than the delay with no choice recorded.
        Call `reminders_sent` once they are handed to the producer (a crash in between re-sends the
        same event ids, which consumers drop)."""
        delay_ms = int(self.choice_reminder_delay_s * 1000)
        outgoing = []
        for item in choices_overdue(self.store.awaiting_choice(), to_ms(now), delay_ms):
            intake = item.intake
            reminder = ChoiceReminderDue(
                envelope=Envelope(
                    event_id=self.ids.derive(intake.intake_event_id, "choice-reminder"),
                    event_type=ChoiceReminderDue.avro_name,
                    occurred_at=now,
                    producer_org_id=self.service_org_id,
                    correlation_id=intake.correlation_id,
                    person_pseudonym=intake.person_pseudonym,
                    causation_id=intake.intake_event_id,
                ),
                intake_event_id=intake.intake_event_id,
                operator_id=intake.operator_id,
                operator_kind=intake.operator_kind,
                region_code=intake.region_code,
                notice_issued_at=datetime.fromtimestamp(item.notice_issued_at_ms / 1000, now.tzinfo),
                delay_s=delay_ms // 1000,
            )
            outgoing.append(Outgoing(CHOICE_REMINDER.name, reminder))
        return outgoing

    def reminders_sent(self, sent: Sequence[Outgoing], now: datetime) -> None:
        for item in sent:
            if isinstance(item.event, ChoiceReminderDue):
                self.store.mark_reminded(item.event.intake_event_id, to_ms(now))
                CHOICE_REMINDERS.labels(item.event.region_code).inc()

    def on_referral(self, referral: ReferralRequested) -> list[Outgoing]:
        """A referral goes to its recipient's inbox, which only that organisation reads."""
        try:
            self.reference.organisation(referral.recipient_org_id)
        except (KeyError, ReferenceDataError) as exc:
            raise Rejected(
                "unknown_recipient", f"{referral.recipient_org_id} is not in the directory"
            ) from exc
        REFERRALS_ROUTED.labels(referral.region_code, referral.recipient_kind.value).inc()
        return [
            forwarded(referral_inbox(referral.recipient_org_id).name, referral)
        ]  # as its author signed it
