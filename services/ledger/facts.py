"""Which fields of an event the ledger keeps in clear in its leaf (`LedgerRecord.facts`), computed once
from the event the runtime already decoded; everything else stays sealed under the person's key.

The rule: once the person's key is destroyed, nothing kept in clear may tell one person's situation
from another's. So the facts say what a regulated party did, where and when, and on which step of the
regulation (an intake at this operator, a notice due and issued, a choice to stay or switch, a referral
made and where it stands, a breach); never *why* in terms of the person nor *where to*:

- not who the person must be told of (`inform`), the rules that fired (`rules`: `R-CAPEMPLOI-BOETH` is
  a disability), the competent operator, the notice's text, nor its `text_sha256`: the notice is a
  deterministic function of those operators, the region and the channel, so a dictionary of the 62
  possible notices matches a hash back to `inform`;
- not where the person was sent: the operator kind chosen (`chosen_operator_kind`), a referral's
  recipient (`recipient_org_id`, `recipient_kind`), nor the partner who answers it (`signer_org_id`,
  and the producer of a status update, `SEALED_ON`): each names the public the person belongs to (Cap
  emploi: a disability; a health and social partner);
- not the links a dictionary can invert: a status update's id (`update_event_id`, and `causation_id`
  which repeats it) is by default `uuid5(referral id, "status:<organisation>:<status>")`, computable for
  every organisation of the directory, which gives back the partner;
- not the journey's `correlation_id`: the operator's own free text for the person's journey (an
  operator may use its file number, or the pseudonym itself);
- not a partner's own `reason_code` on an applied update (up to 64 characters of its choice, or a
  decline reason such as `out_of_public`); the router's code on a refused one is kept
  (`CLEAR_ONLY_WHEN`), a closed vocabulary about the update, never the person.

What stays is listed below with why. What the kept facts still say of a person, in aggregate: that a
notice was due says they belong to at least one specialised public (not which one), which is the
regulation's own subject; an event an organisation states itself names that organisation (an intake at
Cap emploi, or a service started there after a switch, says where the person went): the audit is about
what each organisation did (docs/threat-model.md, "What is left"). To let the report see a new fact,
add its field name here after checking every value it can take against that rule.
"""

from __future__ import annotations

import enum
from typing import Any

from cepbus.contract.models import Event, ReferralStatusChanged

NON_PERSONAL_FIELDS = frozenset(
    {
        # envelope: who stated the event (the regulated party, or a service)
        "producer_org_id",
        # where and who regulates: the operator that received the person, its place and channel
        "operator_id", "operator_kind", "region_code", "departement_code", "channel",
        # the reception site as an id of the public sites registry (not the free `reception_site` text,
        # which could name a place that reveals the person's situation: it stays sealed)
        "reception_site_id",
        # the decision's and the notice's steps: which ruleset, links between steps, whether a notice was
        # due and obligatory, its language (not what it says, to whom it points, nor its hash)
        "ruleset_version", "intake_event_id", "notice_request_id", "language", "status", "obligation",
        "notice_obligation", "notice_due",
        # service levels and breaches (a level, a breach kind: `no_notice_issued`, `no_choice_recorded`,
        # `choice_undecided`, `other`; a referral deadline's name and due time)
        "level", "breach", "deadline", "due_at",
        # choices and referrals: stay, switch or undecided, the consent, the referral's id and requester
        # (the operator the person was with), its steps (not the operator kind chosen nor the recipient)
        "choice", "consent_to_share", "referral_id", "requester_org_id",
        # the router's verdicts on status updates (not the signer: the partner, i.e. the recipient), and
        # the statement digest of the update a verdict applies (hex), which the report matches with the
        # update's own leaf: an acceptance counts only with its author's signed update in the ledger
        "verdict", "state_after", "claimed_occurred_at", "reason_code", "update_digest",
        # the bus's follow-up of a referral (issue #24): why a recipient was reminded (before a deadline,
        # or unanswered), that a referral expired unanswered, its status then and after how many days:
        # what the recipient organisation did (nothing), never about the person
        "reminder", "status_at_expiry", "expired_after_days",
    }
)  # fmt: skip

#: Byte fields kept as facts, in hex: digests (of a statement whose other bytes, its pseudonym and
#: journey id among them, no outsider knows).
HEX_FACTS = frozenset({"update_digest"})

#: A fact kept only when another field of the same event has this value: `reason_code` is the router's
#: (a closed vocabulary) on a refused verdict, a partner's own text on an applied one.
CLEAR_ONLY_WHEN: dict[str, tuple[str, str]] = {"reason_code": ("verdict", "refused")}

#: Facts sealed on one event type (by its Avro name) though kept on others: who states a status update
#: is a party to the referral, nearly always its recipient, i.e. the person's public. So is its signature:
#: a leaf of such a type keeps only its statement digest in clear (`statement_digest`), never the
#: signer's key id nor the signature (anyone could try every key of the directory on it).
SEALED_ON: dict[str, frozenset[str]] = {ReferralStatusChanged.avro_name: frozenset({"producer_org_id"})}
SIGNER_SEALED_ON = frozenset(name for name, fields in SEALED_ON.items() if "producer_org_id" in fields)


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
    for name in (NON_PERSONAL_FIELDS - SEALED_ON.get(event.avro_name, frozenset())) & flat.keys():
        value = flat[name]
        text = value.hex() if name in HEX_FACTS and isinstance(value, bytes) else fact_text(value)
        if text is not None:
            facts[name] = text
    for name, (other, value) in CLEAR_ONLY_WHEN.items():
        if name in facts and fact_text(flat.get(other)) != value:
            del facts[name]
    return facts


__all__ = [
    "CLEAR_ONLY_WHEN",
    "HEX_FACTS",
    "NON_PERSONAL_FIELDS",
    "SEALED_ON",
    "SIGNER_SEALED_ON",
    "fact_text",
    "regulation_facts",
]
