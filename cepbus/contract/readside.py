"""The referral read side's answers, as the router serves them and its clients (the partner inbox) read them.

The router's read side (`services/router/referrals/http.py`) is HTTP, not Kafka, but it is a contract
between processes all the same: the inbox may not import the router, so both sides name the answers
here. The router declares them as its response models (they are its OpenAPI document); the inbox
validates each body against them before a page reads a field, so a router and an inbox that drifted
apart fail at the boundary, with a message, rather than in a template.

The JSON is the read side's wire format since its first release: field names, order and JSON types as
`ReferralRecord.to_json()` and `HistoryEntry.to_json()` (`services/router/referrals/store.py`) write
them. Fields a newer router adds are ignored, so that an inbox keeps working beside it.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict

from cepbus.contract.models import OrganisationKind, ReferralStatus, UpdateVerdict


class ReferralParty(enum.StrEnum):
    """The two parties of a referral; each lifecycle step belongs to one of them."""

    REQUESTER = "requester"
    RECIPIENT = "recipient"


class _ReadSideAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ReferralRecordView(_ReadSideAnswer):
    """A referral's current state, with the deadline it is waiting on (`pending_deadline`, None when
    none is running). `requested_at_ms` is when the requester says it asked (its claim, shown);
    `received_at_ms` when the router received the request, on its own clock, from which every deadline
    counts (None from a router that did not keep it yet)."""

    referral_id: str
    request_event_id: str
    person_pseudonym: str | None
    correlation_id: str
    requester_org_id: str
    recipient_org_id: str
    recipient_kind: OrganisationKind
    region_code: str
    departement_code: str | None
    status: ReferralStatus
    open: bool
    requested_at_ms: int
    updated_at_ms: int
    pending_deadline: str | None
    pending_deadline_due_at_ms: int | None
    received_at_ms: int | None = None


class HistoryEntryView(_ReadSideAnswer):
    """One status update the router applied, with the signature it verified and the directory key;
    `occurred_at_ms` is when its sender says it happened, `received_at_ms` when the router applied it
    (its own clock; None from a router that did not keep it yet)."""

    seq: int
    event_id: str
    status: ReferralStatus
    state_after: ReferralStatus
    actor_org_id: str
    reason_code: str | None
    note: str | None
    occurred_at_ms: int
    signer_org_id: str | None
    signature_hex: str | None
    key_id: str | None
    received_at_ms: int | None = None


class BreachView(_ReadSideAnswer):
    """A deadline the referral missed (reported once)."""

    deadline: str
    due_at_ms: int


class StepView(_ReadSideAnswer):
    """A step the lifecycle allows from the referral's current state: the event, the party it belongs
    to, the state it leads to and the codes it must carry (a decline's reason, a completion's outcome;
    empty when it needs none). A client offers exactly these and so needs no copy of the machine."""

    event: ReferralStatus
    actor: ReferralParty
    to: ReferralStatus
    codes: list[str]


class SealedContactView(_ReadSideAnswer):
    """The person's contact as the requester sealed it to the recipient (issue #24): shown to the
    recipient only, which opens it with its private key (the inbox, in the browser); the router cannot."""

    recipient_key_id: str
    ciphertext_b64: str
    ciphertext_sha256_hex: str


class ReferralView(_ReadSideAnswer):
    """`GET /referrals/{referral_id}`: the state and history from one snapshot, so that they agree;
    `sealed_contact` for its recipient only."""

    referral: ReferralRecordView
    history: list[HistoryEntryView]
    breaches: list[BreachView]
    steps: list[StepView]
    sealed_contact: SealedContactView | None = None


class ExportedReferralView(_ReadSideAnswer):
    """One line of an organisation's export: the referral, the reason code of its closing step (a
    decline's reason, a completion's outcome), and, for its recipient, the sealed contact (opened in the
    browser, never by a server)."""

    referral: ReferralRecordView
    closing_reason_code: str | None = None
    sealed_contact: SealedContactView | None = None


class ReferralsExportView(_ReadSideAnswer):
    """`GET /organisations/{org_id}/referrals/export`: every referral the organisation is party to."""

    org_id: str
    referrals: list[ExportedReferralView]


class OpenReferralsView(_ReadSideAnswer):
    """`GET /organisations/{org_id}/referrals`: the referrals the organisation is party to still open."""

    org_id: str
    open: list[ReferralRecordView]


class UpdateVerdictView(_ReadSideAnswer):
    """`GET /organisations/{org_id}/updates/{event_id}`: what the router did with a status update the
    organisation signed, as the signer's rejection topic says it, for a client that does not read Kafka."""

    org_id: str
    event_id: str
    verdict: UpdateVerdict
    reason_code: str | None
    detail: str | None
    state_before: ReferralStatus | None
    state_after: ReferralStatus | None


__all__ = [
    "BreachView",
    "HistoryEntryView",
    "OpenReferralsView",
    "ReferralParty",
    "ReferralRecordView",
    "ReferralView",
    "StepView",
    "UpdateVerdictView",
]
