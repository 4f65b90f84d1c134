"""Which fields of an event the ledger keeps in clear in its leaf (`LedgerRecord.facts`), computed once
from the event the runtime already decoded; everything else stays sealed under the person's key.

None of the fields below says who the person is or reveals health data. Everything else (profile, free
text, notes, reasons, and the derived facts that reveal a disability: the operators a person is told
of, the rules that fired, the operator kind chosen) stays sealed, so erasure reaches it. To let the
report see a new fact, add its field name here, after asking whether it could reveal who the person is
or their health.
"""

from __future__ import annotations

import enum
from typing import Any

from cepbus.contract.models import Event

NON_PERSONAL_FIELDS = frozenset(
    {
        # envelope
        "producer_org_id", "correlation_id", "causation_id",
        # where and who regulates
        "operator_id", "operator_kind", "region_code", "departement_code", "channel",
        # the reception site as an id of the public sites registry (not the free `reception_site` text,
        # which could name a place that reveals the person's situation: it stays sealed)
        "reception_site_id",
        # decisions and notices (not `inform`, `rules`, `competent_operator`: they can reveal a disability)
        "ruleset_version", "intake_event_id", "notice_request_id", "language", "text_sha256", "decision",
        "rule_id", "breach_kind", "breach", "deadline_at", "due_at", "obligation", "notice_obligation",
        "notice_due", "level",
        # choices and referrals (not `chosen_operator_kind`: a switch to Cap emploi reveals a disability)
        "choice", "consent_to_share", "referral_id", "requester_org_id", "recipient_org_id",
        "recipient_kind", "status", "actor_org_id", "reason_code", "deadline",
        # the router's verdicts on status updates
        "update_event_id", "verdict", "state_after", "claimed_occurred_at", "signer_org_id",
    }
)  # fmt: skip


def fact_text(value: Any) -> str | None:
    """A field's value as the leaf keeps it; None for what is no fact (absent, bytes, a nested record)."""
    if value is None or isinstance(value, bytes | dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list):
        return ",".join(str(item.value if isinstance(item, enum.Enum) else item) for item in value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def regulation_facts(event: Event) -> dict[str, str]:
    """The non-personal facts of a decoded event: its top-level fields and its envelope's."""
    data = event.model_dump(mode="python")
    flat = {**data, **(data.get("envelope") or {})}
    facts = {}
    for name in NON_PERSONAL_FIELDS & flat.keys():
        text = fact_text(flat[name])
        if text is not None:
            facts[name] = text
    return facts


__all__ = ["NON_PERSONAL_FIELDS", "fact_text", "regulation_facts"]
