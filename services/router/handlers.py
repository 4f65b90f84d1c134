"""The router's decisions as plain functions: event in, events out. No Kafka here."""

from __future__ import annotations

from dataclasses import dataclass

from cepbus.metrics_domain import INTAKE_DECISIONS, NOTICES_REQUESTED, REFERRALS_ROUTED
from cepbus.models import (
    Choice,
    ChoiceRecorded,
    IntakeRegistered,
    NoticeRequested,
    ReferralRequested,
    derived_event_id,
    new_envelope,
)
from cepbus.reference import ReferenceData, ReferenceDataError
from cepbus.streaming import Outgoing, Rejected
from cepbus.topics import NOTICE_REQUESTED, REFERRAL_REQUESTED, referral_inbox
from services.notifier.notice import PUBLIC_AGENT_RULE
from services.router.rules import decide


@dataclass(frozen=True)
class RouterHandlers:
    reference: ReferenceData
    service_org_id: str = "cep-bus-router"

    def on_intake(self, intake: IntakeRegistered) -> list[Outgoing]:
        """An intake whose person must be informed of other operators, or told that this operator
        does not serve them (public agents), yields a notice request."""
        decision = decide(intake, self.reference)
        INTAKE_DECISIONS.labels(intake.region_code, intake.operator_kind.value, decision.status).inc()
        if decision.status == "rejected":
            raise Rejected("intake_rejected", decision.rejection_reason or "rejected by the rules")
        if not (decision.inform or PUBLIC_AGENT_RULE in decision.rules):
            return []
        request = NoticeRequested(
            envelope=new_envelope(
                NoticeRequested,
                producer_org_id=self.service_org_id,
                causation=intake.envelope,
                event_id=derived_event_id(intake.event_id, "notice-requested"),
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
            intake_occurred_at=intake.envelope.occurred_at,
        )
        NOTICES_REQUESTED.labels(intake.region_code).inc()
        return [Outgoing(NOTICE_REQUESTED.name, request)]

    def on_choice(self, choice: ChoiceRecorded) -> list[Outgoing]:
        """Choosing another operator makes a referral to that operator in the person's region."""
        if choice.choice != Choice.SWITCH or choice.chosen_operator_kind is None:
            return []
        try:
            recipient = self.reference.operator_for(choice.chosen_operator_kind, choice.region_code)
        except (KeyError, ReferenceDataError) as exc:
            raise Rejected("no_recipient", str(exc)) from exc
        referral_id = derived_event_id(choice.event_id, "referral")
        referral = ReferralRequested(
            envelope=new_envelope(
                ReferralRequested,
                producer_org_id=self.service_org_id,
                causation=choice.envelope,
                event_id=derived_event_id(choice.event_id, "referral-requested"),
            ),
            referral_id=str(referral_id),
            requester_org_id=choice.operator_id,
            recipient_org_id=recipient.org_id,
            recipient_kind=recipient.kind,
            region_code=choice.region_code,
            reason="choix éclairé: the person chose this operator after the informed-choice notice",
            consent_to_share=choice.consent_to_share,
            shared_profile=None,
        )
        return [Outgoing(REFERRAL_REQUESTED.name, referral)]

    def on_referral(self, referral: ReferralRequested) -> list[Outgoing]:
        """A referral goes to its recipient's inbox, which only that organisation reads."""
        try:
            self.reference.organisation(referral.recipient_org_id)
        except (KeyError, ReferenceDataError) as exc:
            raise Rejected(
                "unknown_recipient", f"{referral.recipient_org_id} is not in the directory"
            ) from exc
        REFERRALS_ROUTED.labels(referral.region_code, referral.recipient_kind.value).inc()
        return [Outgoing(referral_inbox(referral.recipient_org_id).name, referral)]
