"""The audit report France compétences follows, computed from ledger records alone.

Pure: it reads only what every leaf carries in clear (event id and type, recorded-at and occurred-at,
the non-personal `facts`), never a sealed payload, so the operator's database and an auditor's verified
export bundle give the same report from the same leaves.

Verdicts, not claims, and the bus's own clock. Referral outcomes are counted from the router's verdicts
(`ReferralUpdateVerdict`), applied ones only, and only when the update a verdict applies is itself in
the ledger, signed by its author (its statement digest, `update_digest`, is that of a recorded update):
an update the router refused (unsigned, forged, out of order) counts for nothing, and neither does a
verdict without its update (`applied_without_update`). Periods and delays are on the times the ledger
recorded the events (`recorded_at_ms`), never on the `occurred_at` a sender claims: an event claimed
last month but recorded today is in today's period. Where the claimed delay differs, it is shown beside
(`claimed`), so a backdated update is visible instead of giving a negative delay; the events in scope
whose claimed time lies outside the period are counted (`events_claimed_outside_period`), so backdating
is visible too.

Scope. An event is in scope when the ledger recorded it in [from_ms, to_ms) and it belongs to the region
asked for.
An event's region is its own `region_code` fact, else that of its referral (`referral_id`), else that of
its journey (`correlation_id`, shared by every event derived from one intake). Chained indicators are
anchored on the event that starts them: notices and the intake -> notice delay on the intakes in scope
(whenever the notice came), acceptance and the delay to first appointment on the referrals in scope.

Event types are classified by the contract's own types (`EVENT_KINDS`, keyed by model class; a test
fails when the ledger can record a type neither counted nor `NOT_COUNTED`); a type the contract does
not know (from a newer writer) is listed under `unknown_event_types` with its count, never dropped.

Periods of days (`LocalPeriod`) are cut at local midnight in each region's time zone (La Réunion UTC+4,
Guyane UTC-3...): an event is in the period when the local date it was recorded on, in its own region's
zone, is one of the days; an event with no region is cut in `FALLBACK_ZONE`. Raw instants
(`from_ms`/`to_ms`) are still taken, for a bundle's own period.

Beside the figures per region and operator kind, the report computes what France compétences' audit
d'initialisation looked at: the CEP's own appointment delay (intake -> first level-1 or level-2 start at
the intake's operator) and the reception sites in use per département, and the operators that sent
nothing (silence, `SILENCE_THRESHOLD_DAYS`). Delay distributions are binned (`DELAY_BINS_S`) so that a
document draws its charts from the JSON alone.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from cepbus.auditlog.leaf import DIRECTORY_EVENT_TYPE, ERASURE_EVENT_TYPE
from cepbus.contract.models import (
    EVENT_MODELS,
    Channel,
    Choice,
    ChoiceRecorded,
    ChoiceReminderDue,
    Event,
    IntakeDecided,
    IntakeRegistered,
    NoticeIssued,
    NoticeObligation,
    NoticeRequested,
    ReferralDeadlineBreached,
    ReferralExpired,
    ReferralRegulationAlert,
    ReferralReminderDue,
    ReferralRequested,
    ReferralStatusChanged,
    ReferralUpdateVerdict,
    RegulationBreach,
    ServiceLevel,
    ServiceLevelStarted,
    UpdateVerdict,
)
from cepbus.contract.models import ReferralStatus as S
from cepbus.contract.regulation import NOTICE_ON_TIME_S

REPORT_FORMAT = "cep-bus-audit-report/1"


class ReportRecord(Protocol):
    """What the report reads of a leaf (`cepbus.auditlog.leaf.LedgerRecord` has it)."""

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


class SealedFacts(Protocol):
    """What only the holder of the persons' keys can read (the ledger's operator; an auditor with a
    bundle cannot): a decline's reason and a referral's recipient kind are sealed under the person's key
    (`services/ledger/facts.py`: they say who the person is), so the report counts refusals by reason
    and by recipient kind only when run against the ledger itself. None: not readable (erased)."""

    def refusal_reason(self, update_digest: str) -> str | None: ...

    def recipient_kind(self, referral_id: str) -> str | None: ...


#: Event type -> what the report does with it, by the contract's own types.
EVENT_KINDS: dict[type[Event], str] = {
    IntakeRegistered: "intake",
    IntakeDecided: "decision",
    NoticeRequested: "notice_due",
    NoticeIssued: "notice_issued",
    ChoiceRecorded: "choice",
    ReferralRequested: "referral",
    ReferralStatusChanged: "referral_claim",  # a raw update (ledgers from before verdicts): not counted
    ReferralUpdateVerdict: "referral_verdict",
    ServiceLevelStarted: "service_level",
    RegulationBreach: "regulation_breach",
    ReferralDeadlineBreached: "deadline_breach",
    ReferralExpired: "referral_expired",
}
#: Types the ledger records that no indicator counts (a reminder is not yet a breach; an alert is a
#: signal for people, the breaches it may lead to are counted): known, never "unknown".
NOT_COUNTED: frozenset[type[Event]] = frozenset(
    {ChoiceReminderDue, ReferralRegulationAlert, ReferralReminderDue}
)

#: Referral statuses that mean the recipient took the person on (a later step implies the acceptance).
ACCEPTED_STATUSES = frozenset({S.ACCEPTED, S.APPOINTMENT_BOOKED, S.FIRST_APPOINTMENT_HELD, S.COMPLETED})
DECLINED_STATUSES = frozenset({S.DECLINED})
FIRST_APPOINTMENT_STATUS = S.FIRST_APPOINTMENT_HELD
CHOICES = tuple(Choice)
APPLIED = UpdateVerdict.APPLIED

#: An operator that sent nothing for more than six months gets a formal notice (L6111-6-1 reporting).
SILENCE_THRESHOLD_DAYS = 183
#: Channels of remote delivery (allowed by the cahier des charges with the same requirements).
REMOTE_CHANNELS = frozenset({Channel.PHONE, Channel.VIDEO})
#: Service levels that end the wait for a CEP appointment.
SERVICE_LEVELS = frozenset(ServiceLevel)
#: Where an event that names no region has its local midnight (France compétences' own zone).
FALLBACK_ZONE = "Europe/Paris"
#: Lower edges (seconds) of the bins of every delay distribution; the last bin is open-ended.
DELAY_BINS_S: tuple[int, ...] = (
    0, 1, 10, 60, 600, 3600, 86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400, 30 * 86_400, 60 * 86_400,
)  # fmt: skip


def short_name(event_type: str) -> str:
    """How the report names a type in its tables (`RegulationBreach`): display only."""
    return event_type.rsplit(".", 1)[-1]


def classify(event_type: str) -> str | None:
    """The report's kind for an event type: by the contract's type of that name (`EVENT_MODELS`); None
    for a type no indicator counts, or one the contract does not know (listed as unknown by the report)."""
    if event_type == ERASURE_EVENT_TYPE:
        return "erasure"
    if event_type == DIRECTORY_EVENT_TYPE:
        return "directory"
    model = EVENT_MODELS.get(event_type)
    return None if model is None else EVENT_KINDS.get(model)


def is_known(event_type: str) -> bool:
    """A type of the contract (or the ledger's erasure): not listed as unknown even when not counted."""
    return event_type in (ERASURE_EVENT_TYPE, DIRECTORY_EVENT_TYPE) or event_type in EVENT_MODELS


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


# -- periods ---------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def local_midnight_ms(day: date, zone: str) -> int:
    """Unix ms of 00:00 on `day` in the IANA `zone` (French zones have no DST change at midnight)."""
    moment = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class LocalPeriod:
    """Whole days, first to last inclusive (either end open), cut at local midnight in each region's
    zone: an event is in the period when its local date in its own region is one of the days, so an
    intake at 23:30 in La Réunion on the last day is in and one at 00:30 the next local day is out,
    whatever the UTC date. `zones` maps region codes to IANA zones (the reference's `timezone`)."""

    first_day: date | None
    last_day: date | None
    zones: Mapping[str, str] = field(default_factory=dict)
    fallback_zone: str = FALLBACK_ZONE

    def __post_init__(self) -> None:
        if self.first_day and self.last_day and self.first_day > self.last_day:
            raise ValueError(f"the period ends ({self.last_day}) before it starts ({self.first_day})")

    def zone(self, region: str | None) -> str:
        return self.zones.get(region or "", self.fallback_zone)

    def bounds_ms(self, region: str | None) -> tuple[int | None, int | None]:
        """[start, end) in Unix ms for events of `region` (its zone, else the fallback zone)."""
        zone = self.zone(region)
        start = None if self.first_day is None else local_midnight_ms(self.first_day, zone)
        end = None if self.last_day is None else local_midnight_ms(self.last_day + timedelta(days=1), zone)
        return start, end

    def contains(self, when_ms: int, region: str | None) -> bool:
        start, end = self.bounds_ms(region)
        return (start is None or when_ms >= start) and (end is None or when_ms < end)

    def envelope_ms(self) -> tuple[int | None, int | None]:
        """The earliest start and the latest end over every zone: what any region's period lies within."""
        bounds = [self.bounds_ms(code) for code in self.zones] + [self.bounds_ms(None)]
        starts = [start for start, _ in bounds if start is not None]
        ends = [end for _, end in bounds if end is not None]
        return (min(starts) if starts else None), (max(ends) if ends else None)


def local_period(
    first_day: date | str | None, last_day: date | str | None, zones: Mapping[str, str]
) -> LocalPeriod:
    """The period of days `first_day`..`last_day` (dates or `YYYY-MM-DD`) cut at local midnight in each
    region's zone (`zones`: region code -> IANA zone); ValueError for a bad date or reversed days."""

    def day(value: date | str | None) -> date | None:
        return date.fromisoformat(value) if isinstance(value, str) else value

    return LocalPeriod(day(first_day), day(last_day), dict(zones))


def _describe_period(
    period: LocalPeriod | None, from_ms: int | None, to_ms: int | None, regions: Iterable[str]
) -> dict[str, Any]:
    """Which convention cut the period, and the instants it gave each region (for the reader)."""
    if period is None:
        cut = "none" if from_ms is None and to_ms is None else "instants [from_ms, to_ms)"
        return {"from": None, "to": None, "cut": cut, "from_ms": from_ms, "to_ms": to_ms}
    bounds = {}
    for code in sorted(set(regions)):
        start, end = period.bounds_ms(code)
        bounds[code] = {"zone": period.zone(code), "from_ms": start, "to_ms": end}
    return {
        "from": None if period.first_day is None else period.first_day.isoformat(),
        "to": None if period.last_day is None else period.last_day.isoformat(),
        "cut": "local midnight per region",
        "fallback_zone": period.fallback_zone,
        "regions": bounds,
    }


# -- operators, distributions, groups -------------------------------------------------------------


#: The leaf fact naming an intake's reception site: an id of the sites registry (cepbus.reference.sites).
SITE_FACT = "reception_site_id"


@dataclass(frozen=True)
class KnownSite:
    """A registered reception site (cepbus.reference.sites), as the report needs it."""

    site_id: str
    operator_id: str
    departement_code: str
    region_code: str


@dataclass(frozen=True)
class KnownOperator:
    """An operator that must report its activity (the reference's CEP operators), for the silence check."""

    org_id: str
    kind: str
    region_code: str


def histogram(delays_ms: Iterable[int], bins_s: tuple[int, ...] = DELAY_BINS_S) -> list[int]:
    """Counts of delays per bin: bin i is [bins_s[i], bins_s[i+1]) seconds, the last one open-ended;
    a negative delay (claimed times only) counts in the first bin."""
    counts = [0] * len(bins_s)
    for delay in delays_ms:
        counts[max(0, bisect.bisect_right(bins_s, delay / 1000) - 1)] += 1
    return counts


def _distribution(pairs: list[tuple[Stamp, Stamp]]) -> dict[str, list[int]]:
    recorded = [end.recorded_ms - start.recorded_ms for start, end in pairs]
    claimed = [end.claimed_ms - start.claimed_ms for start, end in pairs]
    out = {"recorded": histogram(recorded)}
    if claimed != recorded:
        out["claimed"] = histogram(claimed)
    return out


#: The counters kept per region and per operator kind, in the order a document shows them.
GROUP_COUNTS = (
    "intakes", "notices_due", "notices_issued", "notices_on_time", "notices_due_not_issued",
    "choices_stay", "choices_switch", "choices_undecided", "referrals", "referrals_accepted",
    "referrals_declined", "referrals_expired", "referrals_awaiting_answer", "regulation_breaches",
    "deadline_breaches",
    "service_started", "silent_operators",
)  # fmt: skip
#: The delays kept per region and per operator kind.
GROUP_DELAYS = ("intake_to_notice_delay", "delay_to_first_appointment", "cep_appointment_delay")


@dataclass
class _Groups:
    """Counters and delay spans per region and per operator kind."""

    counts: dict[str, dict[str, Counter[str]]] = field(
        default_factory=lambda: {"region": defaultdict(Counter), "kind": defaultdict(Counter)}
    )
    spans: dict[tuple[str, str, str], list[tuple[Stamp, Stamp]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def add(self, region: str | None, kind: str | None, metric: str, n: int = 1) -> None:
        self.counts["region"][region or "?"][metric] += n
        self.counts["kind"][kind or "?"][metric] += n

    def span(self, region: str | None, kind: str | None, delay: str, pair: tuple[Stamp, Stamp]) -> None:
        self.spans[("region", region or "?", delay)].append(pair)
        self.spans[("kind", kind or "?", delay)].append(pair)

    def table(self, dimension: str) -> dict[str, dict[str, Any]]:
        keys = set(self.counts[dimension]) | {key for dim, key, _ in self.spans if dim == dimension}
        out: dict[str, dict[str, Any]] = {}
        for key in sorted(keys):
            counts = self.counts[dimension].get(key, Counter())
            row: dict[str, Any] = {metric: counts.get(metric, 0) for metric in GROUP_COUNTS}
            for delay in GROUP_DELAYS:
                row[delay] = delay_pair(self.spans.get((dimension, key, delay), []))
            out[key] = row
        return out


# -- the report -------------------------------------------------------------------------------------

Span = tuple[Stamp, Stamp]


@dataclass
class _Scope:
    """Which region each record belongs to (its own `region_code`, else its referral's, else its
    journey's) and whether it is in the report's scope."""

    region: str | None
    period: LocalPeriod | None
    from_ms: int | None
    to_ms: int | None
    of_journey: dict[str, str] = field(default_factory=dict)
    of_referral: dict[str, str] = field(default_factory=dict)

    def learn(self, ordered: Sequence[ReportRecord]) -> None:
        for record in ordered:
            facts, code = record.facts, record.facts.get("region_code")
            if code is None:
                continue
            if facts.get("correlation_id"):
                self.of_journey.setdefault(facts["correlation_id"], code)
            if classify(record.event_type) == "referral" and facts.get("referral_id"):
                self.of_referral.setdefault(facts["referral_id"], code)

    def region_for(self, record: ReportRecord) -> str | None:
        facts = record.facts
        return (
            facts.get("region_code")
            or self.of_referral.get(facts.get("referral_id", ""))
            or self.of_journey.get(facts.get("correlation_id", ""))
        )

    def contains(self, record: ReportRecord) -> bool:
        """In the region asked for and recorded in the period: the ledger's clock, never the claim."""
        code = self.region_for(record)
        if self.region is not None and code != self.region:
            return False
        return self.covers(record.recorded_at_ms, code)

    def covers(self, when: int, code: str | None) -> bool:
        """`when` (Unix ms) lies in the period, for an event of region `code`."""
        if self.period is not None:
            return self.period.contains(when, code)
        return not (
            (self.from_ms is not None and when < self.from_ms)
            or (self.to_ms is not None and when >= self.to_ms)
        )


@dataclass
class _Links:
    """What links events, whenever they happened: first notice request / notice per intake, statuses per
    referral, service levels per intake; and each intake's operator kind (for the choice that follows)."""

    notice_due_at: dict[str, int] = field(default_factory=dict)
    notice_issued_at: dict[str, Stamp] = field(default_factory=dict)
    obligation_of: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, list[tuple[Stamp, str]]] = field(default_factory=lambda: defaultdict(list))
    decline_update: dict[str, str] = field(default_factory=dict)  # referral id -> its decline's digest
    refused: Counter[str] = field(default_factory=Counter)
    # applied verdicts whose update (its statement digest) is not in the ledger: never counted
    unproven: int = 0
    levels: dict[str, list[tuple[Stamp, Mapping[str, str]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    intake_kind: dict[str, str | None] = field(default_factory=dict)

    def learn(self, ordered: Sequence[ReportRecord]) -> None:
        # the updates the ledger holds, by their authors' statement digests: a verdict may come before
        # its update in the log (two topics), so all of them first
        updates = {
            record.facts["statement_digest"]
            for record in ordered
            if classify(record.event_type) == "referral_claim" and "statement_digest" in record.facts
        }
        for record in ordered:
            kind, facts = classify(record.event_type), record.facts
            if kind == "intake":
                self.intake_kind[record.event_id] = facts.get("operator_kind")
            elif kind == "notice_due" and facts.get("intake_event_id"):
                self.notice_due_at.setdefault(facts["intake_event_id"], record.recorded_at_ms)
                obligation = facts.get("obligation", NoticeObligation.MANDATORY)
                self.obligation_of.setdefault(facts["intake_event_id"], obligation)
            elif kind == "notice_issued" and facts.get("intake_event_id"):
                self.notice_issued_at.setdefault(facts["intake_event_id"], Stamp.of(record))
            elif kind == "referral_verdict" and facts.get("referral_id") and facts.get("status"):
                if facts.get("verdict") == APPLIED and facts.get("update_digest") not in updates:
                    self.unproven += 1  # the router's word alone: without its author's signed update
                elif facts.get("verdict") == APPLIED:
                    claimed = _instant_ms(facts.get("claimed_occurred_at"), record.occurred_at_ms)
                    stamp = Stamp(record.recorded_at_ms, claimed)
                    self.statuses[facts["referral_id"]].append((stamp, facts["status"]))
                    if facts["status"] in DECLINED_STATUSES and facts.get("update_digest"):
                        self.decline_update[facts["referral_id"]] = facts["update_digest"]
                else:
                    self.refused[facts.get("reason_code") or "?"] += 1
            elif (
                kind == "service_level"
                and facts.get("intake_event_id")
                and facts.get("level") in SERVICE_LEVELS
            ):
                self.levels[facts["intake_event_id"]].append((Stamp.of(record), facts))


def _breach_counters() -> dict[str, Counter[str]]:
    return {"deadline_breach": Counter(), "regulation_breach": Counter()}


@dataclass
class _Tally:
    """What the events in scope count."""

    by_region: Counter[str] = field(default_factory=Counter)
    by_operator: Counter[str] = field(default_factory=Counter)
    by_operator_kind: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    intakes: dict[str, Stamp] = field(default_factory=dict)
    intake_facts: dict[str, Mapping[str, str]] = field(default_factory=dict)
    choices: Counter[str] = field(default_factory=lambda: Counter({choice: 0 for choice in CHOICES}))
    switch_to: Counter[str] = field(default_factory=Counter)
    matrix: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_recipient_kind: Counter[str] = field(default_factory=Counter)
    referrals: dict[str, Stamp] = field(default_factory=dict)
    referral_group: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)  # referrals the bus closed unanswered
    decisions: Counter[str] = field(default_factory=Counter)
    breaches: dict[str, Counter[str]] = field(default_factory=_breach_counters)
    breach_rules: dict[str, Counter[str]] = field(default_factory=_breach_counters)
    by_type: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    erasures: int = 0
    without_region: int = 0

    def count(self, record: ReportRecord, code: str | None, links: _Links, groups: _Groups) -> None:
        facts, kind = record.facts, classify(record.event_type)
        self.by_type[record.event_type] += 1
        if code is None:
            self.without_region += 1
        if kind == "intake":
            self._intake(record, groups)
        elif kind == "decision":
            self.decisions[facts.get("decision") or facts.get("status", "?")] += 1
        elif kind == "choice":
            self.choices[facts.get("choice", "?")] += 1
            if facts.get("choice") == Choice.SWITCH:
                self.switch_to[facts.get("chosen_operator_kind", "?")] += 1
            if facts.get("choice") in CHOICES:
                operator_kind = links.intake_kind.get(facts.get("intake_event_id", ""))
                groups.add(code, operator_kind, f"choices_{facts['choice']}")
        elif kind == "referral":
            self._referral(record, code, groups)
        elif kind == "referral_expired" and facts.get("referral_id"):
            self.expired.add(facts["referral_id"])
        elif kind in self.breaches:
            self._breach(record, kind, code, groups)
        elif kind == "erasure":
            self.erasures += 1
        elif kind is None and not is_known(record.event_type):
            self.unknown[record.event_type] += 1

    def _intake(self, record: ReportRecord, groups: _Groups) -> None:
        facts = record.facts
        self.intakes[record.event_id] = Stamp.of(record)
        self.intake_facts[record.event_id] = facts
        self.by_region[facts.get("region_code", "?")] += 1
        self.by_operator[facts.get("operator_id", "?")] += 1
        self.by_operator_kind[facts.get("operator_kind", "?")] += 1
        self.by_channel[facts.get("channel", "?")] += 1
        groups.add(facts.get("region_code"), facts.get("operator_kind"), "intakes")

    def _referral(self, record: ReportRecord, code: str | None, groups: _Groups) -> None:
        facts = record.facts
        referral_id = facts.get("referral_id", record.event_id)
        self.referrals[referral_id] = Stamp.of(record)
        self.referral_group[referral_id] = (code, facts.get("recipient_kind"))
        self.matrix[facts.get("requester_org_id", "?")][facts.get("recipient_org_id", "?")] += 1
        self.by_recipient_kind[facts.get("recipient_kind", "?")] += 1
        groups.add(code, facts.get("recipient_kind"), "referrals")

    def _breach(self, record: ReportRecord, kind: str, code: str | None, groups: _Groups) -> None:
        facts = record.facts
        self.breaches[kind][short_name(record.event_type)] += 1
        rule = (
            facts.get("rule_id") or facts.get("breach_kind") or facts.get("breach") or facts.get("deadline")
        )
        self.breach_rules[kind][rule or "?"] += 1
        who = facts.get("operator_kind") or facts.get("recipient_kind")
        groups.add(code, who, "deadline_breaches" if kind == "deadline_breach" else "regulation_breaches")


def _notices(tally: _Tally, links: _Links, groups: _Groups) -> tuple[dict[str, Any], list[str]]:
    """The notices section, and the intakes whose notice was issued (in order)."""
    intakes, due_at, issued_at = tally.intakes, links.notice_due_at, links.notice_issued_at
    due = [i for i in intakes if i in due_at]
    issued = [i for i in intakes if i in issued_at]
    mandatory = [i for i in due if links.obligation_of.get(i) != NoticeObligation.INFORMATIVE]
    on_time = 0
    for intake_id in intakes:
        facts = tally.intake_facts[intake_id]
        where, who = facts.get("region_code"), facts.get("operator_kind")
        if intake_id in due_at:
            groups.add(where, who, "notices_due")
            if intake_id not in issued_at:
                groups.add(where, who, "notices_due_not_issued")
        if intake_id in issued_at:
            pair = (intakes[intake_id], issued_at[intake_id])
            groups.add(where, who, "notices_issued")
            groups.span(where, who, "intake_to_notice_delay", pair)
            if pair[1].recorded_ms - pair[0].recorded_ms <= NOTICE_ON_TIME_S * 1000:
                on_time += 1
                groups.add(where, who, "notices_on_time")
    section = {
        "due": len(due),
        "mandatory": len(mandatory),
        "informative": len(due) - len(mandatory),
        "issued": len(issued),
        "due_not_issued": len(set(due) - set(issued)),
        "intake_to_notice_delay": delay_pair([(intakes[i], issued_at[i]) for i in issued]),
        "on_time": on_time,
        "on_time_within_s": NOTICE_ON_TIME_S,
    }
    return section, issued


def _refusals(declined: Sequence[str], links: _Links, sealed: SealedFacts | None) -> dict[str, Any]:
    """Declined referrals by reason and by recipient kind, from what only the ledger can open (erased
    persons' declines counted apart); `available: false` from a bundle."""
    if sealed is None:
        return {"available": False, "total": len(declined)}
    by_reason: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    erased = 0
    for referral_id in declined:
        digest = links.decline_update.get(referral_id)
        reason = sealed.refusal_reason(digest) if digest else None
        kind = sealed.recipient_kind(referral_id)
        if reason is None or kind is None:
            erased += 1
            continue
        by_reason[reason] += 1
        by_kind[kind][reason] += 1
    return {
        "available": True,
        "total": len(declined),
        "by_reason": _counter(by_reason),
        "by_recipient_kind": {kind: _counter(reasons) for kind, reasons in sorted(by_kind.items())},
        "unreadable": erased,
    }


def _referrals(
    tally: _Tally, links: _Links, groups: _Groups, sealed: SealedFacts | None = None
) -> tuple[dict[str, Any], list[tuple[str | None, Span]]]:
    """The referrals section (outcomes from applied verdicts only), and each first appointment's delay
    with its region."""
    accepted = declined = expired = 0
    declined_ids: list[str] = []
    first_appointment: list[tuple[str | None, Span]] = []
    for referral_id, requested_at in tally.referrals.items():
        where, who = tally.referral_group[referral_id]
        seen = sorted(links.statuses.get(referral_id, []), key=lambda item: item[0].recorded_ms)
        names = {status for _, status in seen}
        if names & ACCEPTED_STATUSES:
            accepted += 1
            groups.add(where, who, "referrals_accepted")
        elif names & DECLINED_STATUSES:
            declined += 1
            declined_ids.append(referral_id)
            groups.add(where, who, "referrals_declined")
        elif referral_id in tally.expired:
            expired += 1
            groups.add(where, who, "referrals_expired")
        else:
            groups.add(where, who, "referrals_awaiting_answer")
        held = [when for when, status in seen if status == FIRST_APPOINTMENT_STATUS]
        if held:
            first_appointment.append((where, (requested_at, held[0])))
            groups.span(where, who, "delay_to_first_appointment", (requested_at, held[0]))
    total = len(tally.referrals)
    section = {
        "total": total,
        "matrix": {source: _counter(targets) for source, targets in sorted(tally.matrix.items())},
        "by_recipient_kind": _counter(tally.by_recipient_kind),
        "accepted": accepted,
        "declined": declined,
        "expired": expired,
        "awaiting_answer": total - accepted - declined - expired,
        "acceptance_rate": _rate(accepted, accepted + declined),
        "delay_to_first_appointment": delay_pair([pair for _, pair in first_appointment]),
        "refusals": _refusals(declined_ids, links, sealed),
        "updates_refused": _counter(links.refused),
        "applied_without_update": links.unproven,
    }
    return section, first_appointment


def _breach_section(tally: _Tally, kind: str) -> dict[str, Any]:
    return {
        "total": sum(tally.breaches[kind].values()),
        "by_event_type": _counter(tally.breaches[kind]),
        "by_rule": _counter(tally.breach_rules[kind]),
    }


def build_report(
    records: Iterable[ReportRecord],
    *,
    region: str | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
    period: LocalPeriod | None = None,
    operators: Iterable[KnownOperator] | None = None,
    sites: Iterable[KnownSite] | None = None,
    sealed: SealedFacts | None = None,
) -> dict[str, Any]:
    """The audit report (a JSON-ready dict) over `records`, which should be the whole ledger: events
    outside the scope still link notices and statuses to the intakes and referrals in scope.

    The scope in time is either `period` (days cut at local midnight per region) or the instants
    [`from_ms`, `to_ms`), not both. `operators` (the operators that must report) enables the silence
    check; without it `silent_operators` is null. `sites` (the registry of reception sites) lets the report
    count, per département, the registered sites beside those in use and name site ids it does not know.
    `sealed` (the ledger's own reader) adds the refusals by reason and recipient kind."""
    if period is not None and (from_ms is not None or to_ms is not None):
        raise ValueError("give a period of days or instants (from_ms, to_ms), not both")
    ordered = sorted(records, key=lambda r: (r.recorded_at_ms, r.event_id))  # in the ledger's order
    scope, links, tally, groups = _Scope(region, period, from_ms, to_ms), _Links(), _Tally(), _Groups()
    scope.learn(ordered)
    links.learn(ordered)
    claimed_outside = 0
    for record in ordered:
        if scope.contains(record):
            code = scope.region_for(record)
            tally.count(record, code, links, groups)
            claimed_outside += not scope.covers(record.occurred_at_ms, code)
    notices, issued = _notices(tally, links, groups)
    referrals, first_appointment = _referrals(tally, links, groups, sealed)
    intakes, intake_facts = tally.intakes, tally.intake_facts
    appointments = _cep_appointments(intakes, intake_facts, links.levels, groups)
    silent = None
    if operators is not None:
        expected = [op for op in operators if region is None or op.region_code == region]
        silent = _silent_operators(ordered, expected, period, from_ms, to_ms, groups)
    located = {
        "intake_to_notice": [
            (intake_facts[i].get("region_code"), (intakes[i], links.notice_issued_at[i])) for i in issued
        ],
        "referral_to_first_appointment": first_appointment,
        "cep_appointment": [(intake_facts[i].get("region_code"), pair) for i, pair, _ in appointments],
    }
    distributions: dict[str, Any] = {"bins_s": list(DELAY_BINS_S)}
    distributions.update((name, _distributions(pairs)) for name, pairs in located.items())
    from_ms_out, to_ms_out = from_ms, to_ms
    if period is not None:
        from_ms_out, to_ms_out = period.bounds_ms(region) if region is not None else period.envelope_ms()
    described = [region] if region is not None else list(period.zones) if period is not None else []
    return {
        "format": REPORT_FORMAT,
        "scope": {"region": region, "from_ms": from_ms_out, "to_ms": to_ms_out},
        "period": _describe_period(period, from_ms, to_ms, described),
        "events_in_scope": sum(tally.by_type.values()),
        "events_by_type": _counter(tally.by_type),
        "events_without_region": tally.without_region,
        "events_claimed_outside_period": claimed_outside,
        "intakes": {
            "total": len(intakes),
            "by_region": _counter(tally.by_region),
            "by_operator": _counter(tally.by_operator),
            "by_operator_kind": _counter(tally.by_operator_kind),
            "by_channel": _counter(tally.by_channel),
        },
        "decisions": _counter(tally.decisions),
        "notices": notices,
        "choices": {**_counter(tally.choices), "switch_to": _counter(tally.switch_to)},
        "referrals": referrals,
        "deadline_breaches": _breach_section(tally, "deadline_breach"),
        "regulation_breaches": _breach_section(tally, "regulation_breach"),
        "erasures": tally.erasures,
        "unknown_event_types": _counter(tally.unknown),
        "cep_appointment_delay": _appointment_section(len(intakes), intake_facts, appointments),
        "reception_sites": _reception_sites(intake_facts, sites, region),
        "silent_operators": silent,
        "by_region": groups.table("region"),
        "by_operator_kind": groups.table("kind"),
        "delay_distributions": distributions,
    }


# -- the indicators the audit d'initialisation looked at ---------------------------------------------

#: (intake event id, (intake, first level start), the first start's facts)
Appointment = tuple[str, Span, Mapping[str, str]]
DAY_MS = 86_400_000


def _cep_appointments(
    intakes: Mapping[str, Stamp],
    intake_facts: Mapping[str, Mapping[str, str]],
    levels: Mapping[str, list[tuple[Stamp, Mapping[str, str]]]],
    groups: _Groups,
) -> list[Appointment]:
    """Each intake in scope with its first level-1 or level-2 start at the intake's own operator (a
    start elsewhere, after a switch, is another operator's appointment), first on the bus's clock."""
    out: list[Appointment] = []
    for intake_id, stamp in intakes.items():
        facts = intake_facts[intake_id]
        operator = facts.get("operator_id")
        own = [
            (when, started)
            for when, started in levels.get(intake_id, [])
            if operator is None or started.get("operator_id") in (None, operator)
        ]
        if not own:
            continue
        when, started = min(own, key=lambda item: (item[0].recorded_ms, item[0].claimed_ms))
        out.append((intake_id, (stamp, when), started))
        where, who = facts.get("region_code"), facts.get("operator_kind")
        groups.add(where, who, "service_started")
        groups.span(where, who, "cep_appointment_delay", (stamp, when))
    return out


def delivery(channel: str | None) -> str:
    """`remote` for phone and video, `in_person` otherwise ("?" when the channel is not known)."""
    if channel is None or channel == "?":
        return "?"
    return "remote" if channel in REMOTE_CHANNELS else "in_person"


def _grouped(items: Iterable[tuple[str, Span]]) -> dict[str, dict[str, Any]]:
    spans: dict[str, list[Span]] = defaultdict(list)
    for key, span in items:
        spans[key].append(span)
    return {key: delay_pair(spans[key]) for key in sorted(spans)}


def _appointment_section(
    intake_count: int, intake_facts: Mapping[str, Mapping[str, str]], appointments: list[Appointment]
) -> dict[str, Any]:
    """The CEP's own appointment delay, overall and by region, département, channel and delivery
    (remote included), first level, and by reception site when the leaves carry one."""

    def channel(intake_id: str, started: Mapping[str, str]) -> str:
        return started.get("channel") or intake_facts[intake_id].get("channel") or "?"

    by_region_delivery: dict[str, list[tuple[str, Span]]] = defaultdict(list)
    for intake_id, span, started in appointments:
        where = intake_facts[intake_id].get("region_code", "?")
        by_region_delivery[where].append((delivery(channel(intake_id, started)), span))
    sites = [
        (intake_facts[i][SITE_FACT], span) for i, span, _ in appointments if SITE_FACT in intake_facts[i]
    ]
    return {
        "intakes": intake_count,
        "started": len(appointments),
        "not_started": intake_count - len(appointments),
        "delay": delay_pair(span for _, span, _ in appointments),
        "by_region": _grouped((intake_facts[i].get("region_code", "?"), s) for i, s, _ in appointments),
        "by_departement": _grouped(
            (intake_facts[i].get("departement_code", "?"), s) for i, s, _ in appointments
        ),
        "by_channel": _grouped((channel(i, started), s) for i, s, started in appointments),
        "by_delivery": _grouped((delivery(channel(i, started)), s) for i, s, started in appointments),
        "by_first_level": _grouped((started.get("level", "?"), s) for _, s, started in appointments),
        "by_region_and_delivery": {
            code: _grouped(items) for code, items in sorted(by_region_delivery.items())
        },
        "by_reception_site": _grouped(sites) if any(SITE_FACT in f for f in intake_facts.values()) else None,
    }


def _reception_sites(
    intake_facts: Mapping[str, Mapping[str, str]],
    registry: Iterable[KnownSite] | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """Per département, the intakes received there in person and remotely, by which operators, and at
    which reception sites (the leaves' `reception_site_id`, an id of the sites registry; the free
    `reception_site` text stays sealed). A site counts in its own département (the registry's), else in
    the intake's. With the registry: the sites registered there, those with no intake in the period, and
    the site ids the registry does not know (an operator's system out of step with its declaration)."""
    known = {site.site_id: site for site in registry or () if region is None or site.region_code == region}
    rows: dict[str, dict[str, Any]] = {}

    def row_of(dep: str, region_code: str | None) -> dict[str, Any]:
        return rows.setdefault(dep, {"region_code": region_code, "intakes": 0, "in_person": 0, "remote": 0,
                                     "operators": Counter(), "sites": Counter()})  # fmt: skip

    with_site = any(SITE_FACT in facts for facts in intake_facts.values())
    unregistered: Counter[str] = Counter()
    without_site = 0
    for facts in intake_facts.values():
        row = row_of(facts.get("departement_code", "?"), facts.get("region_code"))
        row["intakes"] += 1
        mode = delivery(facts.get("channel"))
        if mode in ("in_person", "remote"):
            row[mode] += 1
        row["operators"][facts.get("operator_id", "?")] += 1
        site_id = facts.get(SITE_FACT)
        if site_id is None:
            without_site += 1
            continue
        site = known.get(site_id)
        if registry is not None and site is None:
            unregistered[site_id] += 1
        where = row_of(site.departement_code, site.region_code) if site else row
        where["sites"][site_id] += 1
    for site in known.values():  # départements with registered sites and no intake at all
        row_of(site.departement_code, site.region_code)
    declared: dict[str, list[str]] = defaultdict(list)
    for site_id in sorted(known):
        declared[known[site_id].departement_code].append(site_id)
    by_departement = {}
    for dep in sorted(rows):
        row = rows[dep]
        registered = declared.get(dep, [])
        by_departement[dep] = {
            **{key: row[key] for key in ("region_code", "intakes", "in_person", "remote")},
            "operators": _counter(row["operators"]),
            "site_count": len(row["sites"]) if with_site else None,
            "sites": _counter(row["sites"]) if with_site else None,
            "registered_sites": len(registered) if registry is not None else None,
            "registered_sites_unused": [s for s in registered if s not in row["sites"]]
            if registry is not None
            else None,
        }
    return {
        "site_fact_in_ledger": with_site,
        "registry": registry is not None,
        "departements_with_intakes": sum(1 for row in rows.values() if row["intakes"]),
        "sites_in_use": sum(len(row["sites"]) for row in rows.values()) if with_site else None,
        "sites_registered": len(known) if registry is not None else None,
        "intakes_without_site": without_site,
        "unregistered_sites": _counter(unregistered) if registry is not None else None,
        "by_departement": by_departement,
    }


def _silent_operators(
    ordered: list[ReportRecord],
    operators: list[KnownOperator],
    period: LocalPeriod | None,
    from_ms: int | None,
    to_ms: int | None,
    groups: _Groups,
) -> dict[str, Any]:
    """The operators the bus heard nothing from in the period (no event they produced, no status update
    of theirs applied), on the bus's clock, with how long they have been silent as of the period's end
    (or the ledger's last entry, if earlier): more than SILENCE_THRESHOLD_DAYS calls for a formal notice.
    An operator never heard of is silent since the ledger's first entry."""
    known = {op.org_id: op for op in operators}

    def bounds(op: KnownOperator) -> tuple[int | None, int | None]:
        return period.bounds_ms(op.region_code) if period is not None else (from_ms, to_ms)

    first = min((r.recorded_at_ms for r in ordered), default=None)
    latest = max((r.recorded_at_ms for r in ordered), default=None)
    last_heard: dict[str, int] = {}
    heard: set[str] = set()
    for record in ordered:
        facts = record.facts
        senders = {facts.get("producer_org_id", "")}
        if classify(record.event_type) == "referral_verdict" and facts.get("verdict") == APPLIED:
            senders.add(facts.get("signer_org_id", ""))
        for org_id in senders & known.keys():
            start, end = bounds(known[org_id])
            when = record.recorded_at_ms
            if end is not None and when >= end:
                continue
            last_heard[org_id] = max(last_heard.get(org_id, when), when)
            if start is None or when >= start:
                heard.add(org_id)
    rows: dict[str, dict[str, Any]] = {}
    for org_id in sorted(known.keys() - heard):
        op = known[org_id]
        end = bounds(op)[1]
        as_of = latest if end is None or latest is None else min(end, latest)
        since = last_heard.get(org_id, first)
        days = None if as_of is None or since is None else round((as_of - since) / DAY_MS, 1)
        rows[org_id] = {
            "kind": op.kind,
            "region_code": op.region_code,
            "last_heard_ms": last_heard.get(org_id),
            "silent_since_ms": since,
            "as_of_ms": as_of,
            "silent_days": days,
            "formal_notice_due": days is not None and days > SILENCE_THRESHOLD_DAYS,
        }
        groups.add(op.region_code, op.kind, "silent_operators")
    return {
        "threshold_days": SILENCE_THRESHOLD_DAYS,
        "expected": len(known),
        "heard": len(heard),
        "silent": len(rows),
        "formal_notice_due": sum(1 for row in rows.values() if row["formal_notice_due"]),
        "ledger_first_ms": first,
        "ledger_last_ms": latest,
        "operators": rows,
    }


def _distributions(located: list[tuple[str | None, Span]]) -> dict[str, Any]:
    """Binned delays (DELAY_BINS_S), overall and per region, on the bus's clock and, where they
    differ, on the claimed times."""
    by_region: dict[str, list[Span]] = defaultdict(list)
    for code, span in located:
        by_region[code or "?"].append(span)
    return {
        "all": _distribution([span for _, span in located]),
        "by_region": {code: _distribution(by_region[code]) for code in sorted(by_region)},
    }


def _flatten(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, rows)
    elif isinstance(value, list):  # e.g. a distribution's counts: one row per bin, `...recorded.0`
        for position, item in enumerate(value):
            _flatten(f"{prefix}.{position}", item, rows)
    else:
        rows.append((prefix, "" if value is None else str(value)))


def report_json(report: Mapping[str, Any]) -> str:
    """The report as `--format json` prints it and as the PDF document carries it attached: the same text."""
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


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
