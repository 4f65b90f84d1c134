"""The notifier's work as a plain function: a notice request in, the issued notice out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cepbus.contract.models import NoticeIssued, NoticeRequested, derived_envelope
from cepbus.contract.topics import NOTICE_ISSUED
from cepbus.reference import ReferenceData
from cepbus.runtime.messages import Outgoing
from cepbus.trust.ids import DEVELOPMENT_IDS, EventIds
from services.notifier.metrics import INTAKE_TO_NOTICE_SECONDS, NOTICES_ISSUED
from services.notifier.notice import render_notice


@dataclass(frozen=True)
class NotifierHandlers:
    reference: ReferenceData
    service_org_id: str = "cep-bus-notifier"
    ids: EventIds = DEVELOPMENT_IDS  # keyed derivation of the ids of the notices it issues

    def on_notice_requested(self, request: NoticeRequested) -> list[Outgoing]:
        rendered = render_notice(request, self.reference)
        notice = NoticeIssued(
            envelope=derived_envelope(
                NoticeIssued, request, "notice-issued", producer_org_id=self.service_org_id, ids=self.ids
            ),
            notice_request_id=str(request.event_id),
            intake_event_id=request.intake_event_id,
            operator_id=request.operator_id,
            region_code=request.region_code,
            channel=request.channel,
            inform=request.inform,
            language="fr",
            text=rendered.text,
            text_sha256=rendered.sha256,
            obligation=request.obligation,
        )
        NOTICES_ISSUED.labels(request.region_code, request.channel.value).inc()
        # requests from before intake_occurred_at existed: the router's decision time is the best bound
        intake_at = request.intake_occurred_at or request.envelope.occurred_at
        delay_s = (datetime.now(UTC) - intake_at).total_seconds()
        INTAKE_TO_NOTICE_SECONDS.labels(request.region_code).observe(max(0.0, delay_s))
        return [Outgoing(NOTICE_ISSUED.name, notice)]
