"""The audit report France compétences follows, computed from ledger records alone.

Pure: it reads only what every leaf carries in clear (event id and type, occurred-at, the non-personal
`facts`), never a sealed payload, so the operator's database and an auditor's verified export bundle give
the same report from the same leaves.

Verdicts, not claims, and the bus's own clock. Referral outcomes are counted from the router's verdicts
(`ReferralUpdateVerdict`), applied ones only: an update the router refused (unsigned, forged, out of
order) counts for nothing. Delays are measured on the times the ledger recorded the events
(`recorded_at_ms`), never on the `occurred_at` a sender claims; where the claimed delay differs, it is
shown beside (`claimed`), so a backdated update is visible instead of giving a negative delay.

Scope. An event is in scope when it occurred in [from_ms, to_ms) and belongs to the region asked for.
An event's region is its own `region_code` fact, else that of its referral (`referral_id`), else that of
its journey (`correlation_id`, shared by every event derived from one intake). Chained indicators are
anchored on the event that starts them: notices and the intake -> notice delay on the intakes in scope
(whenever the notice came), acceptance and the delay to first appointment on the referrals in scope.

Event types are classified by a small registry (`EVENT_KINDS`) then by name patterns
(`NAME_PATTERNS`: "...Deadline...Breach..." is a deadline breach, any other "...Breach..." a regulation
breach), so event types added later are counted without a change here; a type neither knows is listed
under `unknown_event_types` with its count, never dropped.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

REPORT_FORMAT = "cep-bus-audit-report/1"


class ReportRecord(Protocol):
    """What the report reads of a leaf (`services.ledger.record.LedgerRecord` has it)."""

    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def occurred_at_ms(self) -> int: ...
    @property
    def recorded_at_ms(self) -> int: ...
    @property
    def facts(self) -> Mapping[str, str]: ...


#: Short event type name (after the last dot) -> what the report does with it.
EVENT_KINDS: dict[str, str] = {
    "IntakeRegistered": "intake",
    "IntakeDecided": "decision",
    "NoticeRequested": "notice_due",
    "NoticeIssued": "notice_issued",
    "ChoiceRecorded": "choice",
    "ReferralRequested": "referral",
    "ReferralStatusChanged": "referral_claim",  # a raw update (ledgers from before verdicts): not counted
    "ReferralUpdateVerdict": "referral_verdict",
    "LedgerErasure": "erasure",
}

#: Tried in order on short names the registry does not know.
NAME_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Deadline.*(Breach|Missed|Exceeded)|(Breach|Missed|Exceeded).*Deadline"), "deadline_breach"),
    (re.compile(r"Breach"), "regulation_breach"),
)

#: Referral statuses that mean the recipient took the person on (a later step implies the acceptance).
ACCEPTED_STATUSES = frozenset({"accepted", "appointment_booked", "first_appointment_held", "completed"})
DECLINED_STATUSES = frozenset({"declined"})
FIRST_APPOINTMENT_STATUS = "first_appointment_held"
CHOICES = ("stay", "switch", "undecided")


def short_name(event_type: str) -> str:
    return event_type.rsplit(".", 1)[-1]


def classify(event_type: str) -> str | None:
    """The report's kind for an event type, or None when neither the registry nor a pattern knows it."""
    name = short_name(event_type)
    if name in EVENT_KINDS:
        return EVENT_KINDS[name]
    for pattern, kind in NAME_PATTERNS:
        if pattern.search(name):
            return kind
    return None


def delay_stats(delays_ms: Iterable[int]) -> dict[str, float | int | None]:
    """Count, p50, p90 and max in seconds; percentiles by nearest rank (an observed value, no
    interpolation, so anyone recomputes the same figure)."""
    ordered = sorted(delays_ms)
    if not ordered:
        return {"count": 0, "p50_s": None, "p90_s": None, "max_s": None}

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)] / 1000

    return {"count": len(ordered), "p50_s": rank(0.5), "p90_s": rank(0.9), "max_s": ordered[-1] / 1000}


@dataclass(frozen=True)
class Stamp:
    """When the ledger recorded an event, and when its sender said it happened."""

    recorded_ms: int
    claimed_ms: int

    @classmethod
    def of(cls, record: ReportRecord) -> Stamp:
        return cls(record.recorded_at_ms, record.occurred_at_ms)


def _instant_ms(text: str | None, default: int) -> int:
    """An ISO-8601 fact as Unix milliseconds (the default when absent or unreadable)."""
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000) if text else default
    except ValueError:
        return default


def delay_pair(spans: Iterable[tuple[Stamp, Stamp]]) -> dict[str, Any]:
    """Delays on the bus's recorded times, with the claimed ones beside when any of them differs."""
    pairs = list(spans)
    recorded = [end.recorded_ms - start.recorded_ms for start, end in pairs]
    claimed = [end.claimed_ms - start.claimed_ms for start, end in pairs]
    stats: dict[str, Any] = dict(delay_stats(recorded))
    if claimed != recorded:
        stats["claimed"] = delay_stats(claimed)
    return stats


def _counter(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items()))


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def build_report(
    records: Iterable[ReportRecord],
    *,
    region: str | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
) -> dict[str, Any]:
    """The audit report (a JSON-ready dict) over `records`, which should be the whole ledger: events
    outside the scope still link notices and statuses to the intakes and referrals in scope."""
    ordered = sorted(records, key=lambda r: (r.occurred_at_ms, r.event_id))
    region_of_journey: dict[str, str] = {}
    region_of_referral: dict[str, str] = {}
    for record in ordered:
        facts, code = record.facts, record.facts.get("region_code")
        if code is None:
            continue
        if facts.get("correlation_id"):
            region_of_journey.setdefault(facts["correlation_id"], code)
        if short_name(record.event_type) == "ReferralRequested" and facts.get("referral_id"):
            region_of_referral.setdefault(facts["referral_id"], code)

    def region_for(record: ReportRecord) -> str | None:
        facts = record.facts
        return (
            facts.get("region_code")
            or region_of_referral.get(facts.get("referral_id", ""))
            or region_of_journey.get(facts.get("correlation_id", ""))
        )

    def in_scope(record: ReportRecord) -> bool:
        when = record.occurred_at_ms
        if (from_ms is not None and when < from_ms) or (to_ms is not None and when >= to_ms):
            return False
        return region is None or region_for(record) == region

    # Linking events, whenever they happened: first notice request / notice per intake, statuses per referral.
    notice_due_at: dict[str, int] = {}
    notice_issued_at: dict[str, Stamp] = {}
    obligation_of: dict[str, str] = {}
    statuses: dict[str, list[tuple[Stamp, str]]] = defaultdict(list)
    refused: Counter[str] = Counter()
    for record in ordered:
        kind, facts = classify(record.event_type), record.facts
        if kind == "notice_due" and facts.get("intake_event_id"):
            notice_due_at.setdefault(facts["intake_event_id"], record.recorded_at_ms)
            obligation_of.setdefault(facts["intake_event_id"], facts.get("obligation", "mandatory"))
        elif kind == "notice_issued" and facts.get("intake_event_id"):
            notice_issued_at.setdefault(facts["intake_event_id"], Stamp.of(record))
        elif kind == "referral_verdict" and facts.get("referral_id") and facts.get("status"):
            if facts.get("verdict") == "applied":
                claimed = _instant_ms(facts.get("claimed_occurred_at"), record.occurred_at_ms)
                stamp = Stamp(record.recorded_at_ms, claimed)
                statuses[facts["referral_id"]].append((stamp, facts["status"]))
            else:
                refused[facts.get("reason_code") or "?"] += 1

    by_region: Counter[str] = Counter()
    by_operator: Counter[str] = Counter()
    by_operator_kind: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    intakes: dict[str, Stamp] = {}
    choices: Counter[str] = Counter({choice: 0 for choice in CHOICES})
    switch_to: Counter[str] = Counter()
    matrix: dict[str, Counter[str]] = defaultdict(Counter)
    by_recipient_kind: Counter[str] = Counter()
    referrals: dict[str, Stamp] = {}
    decisions: Counter[str] = Counter()
    breaches: dict[str, Counter[str]] = {"deadline_breach": Counter(), "regulation_breach": Counter()}
    breach_rules: dict[str, Counter[str]] = {"deadline_breach": Counter(), "regulation_breach": Counter()}
    by_type: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    erasures = 0
    without_region = 0

    for record in ordered:
        if not in_scope(record):
            continue
        facts, kind = record.facts, classify(record.event_type)
        by_type[record.event_type] += 1
        if region_for(record) is None:
            without_region += 1
        if kind == "intake":
            intakes[record.event_id] = Stamp.of(record)
            by_region[facts.get("region_code", "?")] += 1
            by_operator[facts.get("operator_id", "?")] += 1
            by_operator_kind[facts.get("operator_kind", "?")] += 1
            by_channel[facts.get("channel", "?")] += 1
        elif kind == "decision":
            decisions[facts.get("decision") or facts.get("status", "?")] += 1
        elif kind == "choice":
            choices[facts.get("choice", "?")] += 1
            if facts.get("choice") == "switch":
                switch_to[facts.get("chosen_operator_kind", "?")] += 1
        elif kind == "referral":
            referrals[facts.get("referral_id", record.event_id)] = Stamp.of(record)
            matrix[facts.get("requester_org_id", "?")][facts.get("recipient_org_id", "?")] += 1
            by_recipient_kind[facts.get("recipient_kind", "?")] += 1
        elif kind in breaches:
            breaches[kind][short_name(record.event_type)] += 1
            rule = (
                facts.get("rule_id")
                or facts.get("breach_kind")
                or facts.get("breach")
                or facts.get("deadline")
            )
            breach_rules[kind][rule or "?"] += 1
        elif kind == "erasure":
            erasures += 1
        elif kind is None:
            unknown[record.event_type] += 1

    due = [i for i in intakes if i in notice_due_at]
    issued = [i for i in intakes if i in notice_issued_at]
    mandatory = [i for i in due if obligation_of.get(i) != "informative"]
    accepted = declined = 0
    first_appointment: list[tuple[Stamp, Stamp]] = []
    for referral_id, requested_at in referrals.items():
        seen = sorted(statuses.get(referral_id, []), key=lambda item: item[0].recorded_ms)
        names = {status for _, status in seen}
        if names & ACCEPTED_STATUSES:
            accepted += 1
        elif names & DECLINED_STATUSES:
            declined += 1
        held = [when for when, status in seen if status == FIRST_APPOINTMENT_STATUS]
        if held:
            first_appointment.append((requested_at, held[0]))
    notice_delays = [(intakes[i], notice_issued_at[i]) for i in issued]

    return {
        "format": REPORT_FORMAT,
        "scope": {"region": region, "from_ms": from_ms, "to_ms": to_ms},
        "events_in_scope": sum(by_type.values()),
        "events_by_type": _counter(by_type),
        "events_without_region": without_region,
        "intakes": {
            "total": len(intakes),
            "by_region": _counter(by_region),
            "by_operator": _counter(by_operator),
            "by_operator_kind": _counter(by_operator_kind),
            "by_channel": _counter(by_channel),
        },
        "decisions": _counter(decisions),
        "notices": {
            "due": len(due),
            "mandatory": len(mandatory),
            "informative": len(due) - len(mandatory),
            "issued": len(issued),
            "due_not_issued": len(set(due) - set(issued)),
            "intake_to_notice_delay": delay_pair(notice_delays),
        },
        "choices": {**_counter(choices), "switch_to": _counter(switch_to)},
        "referrals": {
            "total": len(referrals),
            "matrix": {source: _counter(targets) for source, targets in sorted(matrix.items())},
            "by_recipient_kind": _counter(by_recipient_kind),
            "accepted": accepted,
            "declined": declined,
            "awaiting_answer": len(referrals) - accepted - declined,
            "acceptance_rate": _rate(accepted, accepted + declined),
            "delay_to_first_appointment": delay_pair(first_appointment),
            "updates_refused": _counter(refused),
        },
        "deadline_breaches": {
            "total": sum(breaches["deadline_breach"].values()),
            "by_event_type": _counter(breaches["deadline_breach"]),
            "by_rule": _counter(breach_rules["deadline_breach"]),
        },
        "regulation_breaches": {
            "total": sum(breaches["regulation_breach"].values()),
            "by_event_type": _counter(breaches["regulation_breach"]),
            "by_rule": _counter(breach_rules["regulation_breach"]),
        },
        "erasures": erasures,
        "unknown_event_types": _counter(unknown),
    }


def _flatten(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, rows)
    else:
        rows.append((prefix, "" if value is None else str(value)))


def report_csv(report: Mapping[str, Any]) -> str:
    """The report as `indicator,value` rows, one per leaf of the JSON (e.g.
    `referrals.matrix.cep-r84.apec-r84,3`), for a spreadsheet."""
    rows: list[tuple[str, str]] = []
    _flatten("", dict(report), rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("indicator", "value"))
    writer.writerows(rows)
    return out.getvalue()
