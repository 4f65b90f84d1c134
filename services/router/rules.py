"""The regulation decision: who is competent for a person, and whom they must be told about.

Pure functions, no Kafka: the router calls `decide` on each `IntakeRegistered`; `explain` backs the
`cep-bus rules explain` command so that an operator can check a case by hand.

Publics (Code du travail L6111-6): the regional CEP operator serves employed people of the private
sector and the self-employed, not public agents; Apec serves cadres and young graduates; Cap emploi
the "bénéficiaires de l'obligation d'emploi" (L5212-13); France Travail job seekers; the Missions
locales people aged 16 to 25. A person may belong to several publics. Informed choice ("choix
éclairé") means: the person is told of every CEP operator whose public they belong to, except the
kind of operator they are already with.

Competent operator (documented precedence):
1. the kind of operator the person is with, when they belong to its public (`R-COMPETENT-CURRENT`):
   the person chose it and access is not closed to them ("liberté de choix de l'accompagnateur");
2. otherwise the first of their publics in `COMPETENCE_PRECEDENCE` (`R-COMPETENT-PRECEDENCE`):
   Cap emploi, Mission locale, Apec, France Travail, regional CEP, i.e. the most specific need
   first (disability, then age, then cadre status), then the status-based public (job seeker),
   then the general public of the regional operator;
3. no public matches (`R-NO-PUBLIC-MATCH`): no competent operator, the case is for a human.

Unknown profile fields are never defaulted: a decision that needs one is "incomplete", lists the
missing fields and keeps what could be decided (`inform` is then a lower bound: more information
can only add operators). Wrong places or dates are "rejected": the opening date of the region's
CEP service applies to intakes at every kind of operator, since the regulation between operators
that this bus enforces starts with that service. The intake date is the local date in the region.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from cepbus.contract.models import (
    CEP_OPERATOR_KINDS,
    DEPARTEMENT_CODE,
    ORG_ID,
    REGION_CODE,
    Channel,
    EmploymentStatus,
    IntakePurpose,
    IntakeRegistered,
    OrganisationKind,
    Profile,
)
from cepbus.contract.rule_ids import PUBLIC_AGENT_RULE
from cepbus.reference import ReferenceData, ReferenceDataError, Region, load_reference

__all__ = [
    "COMPETENCE_PRECEDENCE",
    "RULES",
    "RULESET_VERSION",
    "Decision",
    "Rule",
    "decide",
    "decide_profile",
    "explain",
]

#: Bump on every change of a rule's meaning: decisions carry it so the trail says which rules applied.
RULESET_VERSION = "2020-2023.1"

#: Age bounds of the Missions locales' public, in years reached during the intake year.
ML_MIN_AGE = 16
ML_MAX_AGE = 25

#: Who is competent when the person's current operator does not serve them (see module doc).
COMPETENCE_PRECEDENCE: tuple[OrganisationKind, ...] = (
    OrganisationKind.CAP_EMPLOI,
    OrganisationKind.MISSION_LOCALE,
    OrganisationKind.APEC,
    OrganisationKind.FRANCE_TRAVAIL,
    OrganisationKind.REGIONAL_CEP,
)

#: Employment statuses served by the regional CEP operator.
REGIONAL_STATUSES = frozenset({EmploymentStatus.PRIVATE_EMPLOYEE, EmploymentStatus.SELF_EMPLOYED})


@dataclass(frozen=True)
class Rule:
    """A named rule: its id is stable (consumers such as the notice renderer match on it)."""

    id: str
    meaning: str
    legal_basis: str


_L6111_6 = "Code du travail L6111-6"

#: Every rule, in the canonical order in which a decision lists the rules that fired.
RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "R-REJECT-NOT-CEP-OPERATOR",
            "the intake was not made at one of the five kinds of CEP operator",
            _L6111_6,
        ),
        Rule(
            "R-REJECT-LOCATION",
            "unknown region or département, or a département outside the stated region",
            "INSEE, code officiel géographique",
        ),
        Rule(
            "R-REJECT-BEFORE-OPENING",
            "intake dated before the regional CEP service opened in the region",
            "loi n° 2018-771 du 5 septembre 2018 ; ouverture 1er janvier 2020 (1er mars 2020 Guyane, "
            "La Réunion)",
        ),
        Rule(
            "R-REJECT-BIRTH-YEAR",
            "birth year after the intake year",
            "cohérence des données (Profile.birth_year)",
        ),
        Rule(
            "R-INCOMPLETE-PROFILE",
            "a profile field the decision needs is unknown; it is not defaulted",
            f"{_L6111_6} (publics des opérateurs)",
        ),
        Rule("R-APEC-CADRE", "a cadre is in the public of Apec", f"{_L6111_6} (Apec : cadres)"),
        Rule(
            "R-APEC-YOUNG-GRAD",
            "a young graduate is in the public of Apec",
            f"{_L6111_6} (Apec : jeunes diplômés)",
        ),
        Rule(
            "R-CAPEMPLOI-BOETH",
            "a bénéficiaire de l'obligation d'emploi is in the public of Cap emploi",
            f"{_L6111_6}, L5212-13, L5214-3-1",
        ),
        Rule(
            "R-FT-JOBSEEKER",
            "a job seeker (status or registration) is in the public of France Travail",
            f"{_L6111_6}, L5312-1",
        ),
        Rule(
            "R-ML-AGE-16-25",
            "a person aged 16 to 25 in the intake year is in the public of the Missions locales",
            f"{_L6111_6}, L5314-2",
        ),
        Rule(
            PUBLIC_AGENT_RULE,
            "a public agent is not served by the regional CEP operator",
            f"{_L6111_6} (opérateur régional : actifs occupés du secteur privé, hors agents publics)",
        ),
        Rule(
            "R-REGIONAL-COMPETENT",
            "an employee of the private sector or a self-employed person is in the public of the "
            "regional CEP operator",
            f"{_L6111_6} ; loi n° 2018-771 du 5 septembre 2018",
        ),
        Rule(
            "R-NO-SELF-INFORM",
            "the person is not told of the kind of operator they are already with",
            "choix éclairé : information sur les autres opérateurs (France compétences)",
        ),
        Rule(
            "R-COMPETENT-CURRENT",
            "the operator the person is with serves them and stays competent",
            "liberté de choix de l'accompagnateur",
        ),
        Rule(
            "R-COMPETENT-PRECEDENCE",
            "the operator the person is with does not serve them: competent operator by precedence",
            _L6111_6,
        ),
        Rule(
            "R-NO-PUBLIC-MATCH",
            "no CEP operator's public matches the profile: no competent operator, a human decides",
            _L6111_6,
        ),
    )
}

_ORDER = {rule_id: index for index, rule_id in enumerate(RULES)}

#: Which public each "public" rule puts the person in.
_PUBLIC_OF_RULE: dict[str, OrganisationKind] = {
    "R-APEC-CADRE": OrganisationKind.APEC,
    "R-APEC-YOUNG-GRAD": OrganisationKind.APEC,
    "R-CAPEMPLOI-BOETH": OrganisationKind.CAP_EMPLOI,
    "R-FT-JOBSEEKER": OrganisationKind.FRANCE_TRAVAIL,
    "R-ML-AGE-16-25": OrganisationKind.MISSION_LOCALE,
    "R-REGIONAL-COMPETENT": OrganisationKind.REGIONAL_CEP,
}

_KIND_LABEL = {
    OrganisationKind.REGIONAL_CEP: "l'opérateur régional du CEP",
    OrganisationKind.APEC: "l'Apec",
    OrganisationKind.CAP_EMPLOI: "Cap emploi",
    OrganisationKind.FRANCE_TRAVAIL: "France Travail",
    OrganisationKind.MISSION_LOCALE: "la Mission locale",
}

Status = Literal["decided", "incomplete", "rejected"]


@dataclass(frozen=True)
class Decision:
    """The outcome of the regulation rules for one intake; `rules[i]` is explained by `reasons[i]`."""

    status: Status
    competent_operator: OrganisationKind | None
    inform: tuple[OrganisationKind, ...]
    rules: tuple[str, ...]
    reasons: tuple[str, ...]
    missing_fields: tuple[str, ...]
    rejection_reason: str | None
    ruleset_version: str
    reference_version: str

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON types only (enum values as strings), for logs, the CLI and events."""
        return {
            "status": self.status,
            "competent_operator": self.competent_operator.value if self.competent_operator else None,
            "inform": [kind.value for kind in self.inform],
            "rules": list(self.rules),
            "reasons": list(self.reasons),
            "missing_fields": list(self.missing_fields),
            "rejection_reason": self.rejection_reason,
            "ruleset_version": self.ruleset_version,
            "reference_version": self.reference_version,
        }


def _reason(rule_id: str, detail: str) -> str:
    return f"{rule_id}: {detail} [{RULES[rule_id].legal_basis}]"


class _Fired:
    """Rules that fired with their reasons, kept in the canonical order."""

    def __init__(self) -> None:
        self._items: dict[str, str] = {}

    def add(self, rule_id: str, detail: str) -> None:
        self._items.setdefault(rule_id, _reason(rule_id, detail))

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._items

    def ordered(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        ids = sorted(self._items, key=_ORDER.__getitem__)
        return tuple(ids), tuple(self._items[i] for i in ids)


def _rejected(rule_id: str, detail: str, reference: ReferenceData) -> Decision:
    reason = _reason(rule_id, detail)
    return Decision(
        status="rejected",
        competent_operator=None,
        inform=(),
        rules=(rule_id,),
        reasons=(reason,),
        missing_fields=(),
        rejection_reason=detail,
        ruleset_version=RULESET_VERSION,
        reference_version=reference.reference_version,
    )


def _local_date(on: date, region: Region | None) -> date:
    """The date of an instant in the region's own time zone: 23:30 UTC on 31 December is already
    1 January in Paris, and opening dates are local."""
    if isinstance(on, datetime):
        return on.astimezone(region.zone).date() if on.tzinfo and region else on.date()
    return on


def _kleene_or(values: Iterable[bool | None]) -> bool | None:
    """True if any is true, False if all are false, None (unknown) otherwise."""
    items = list(values)
    if any(value is True for value in items):
        return True
    if all(value is False for value in items):
        return False
    return None


def decide_profile(
    *,
    operator_kind: OrganisationKind | str,
    region_code: str,
    departement_code: str,
    profile: Profile,
    on_date: date,
    reference: ReferenceData,
) -> Decision:
    """Decide for a person received by an operator of `operator_kind` in a region on `on_date`.

    `on_date` may be a timezone-aware datetime: its local date in the region is used.
    """
    try:
        kind = OrganisationKind(operator_kind)
    except ValueError:
        kind = None
    if kind is None or kind not in CEP_OPERATOR_KINDS:
        return _rejected(
            "R-REJECT-NOT-CEP-OPERATOR",
            f"operator kind {operator_kind!s} is not a CEP operator (expected one of "
            f"{', '.join(sorted(CEP_OPERATOR_KINDS))})",
            reference,
        )
    try:
        reference.check_location(region_code, departement_code)
    except ReferenceDataError as exc:
        return _rejected("R-REJECT-LOCATION", str(exc), reference)
    region = reference.region(region_code)
    day = _local_date(on_date, region)
    if day < region.opened_on:
        return _rejected(
            "R-REJECT-BEFORE-OPENING",
            f"intake dated {day.isoformat()}, before the regional CEP service opened in "
            f"{region.name} ({region.code}) on {region.opened_on.isoformat()}",
            reference,
        )
    if profile.birth_year is not None and profile.birth_year > day.year:
        return _rejected(
            "R-REJECT-BIRTH-YEAR",
            f"birth year {profile.birth_year} is after the intake year {day.year}",
            reference,
        )

    fired = _Fired()
    missing: set[str] = set()
    publics: set[OrganisationKind] = set()
    status = profile.employment_status

    # Apec: cadres and young graduates.
    if profile.cadre:
        fired.add("R-APEC-CADRE", "cadre : public de l'Apec")
    if profile.young_graduate:
        fired.add("R-APEC-YOUNG-GRAD", "jeune diplômé(e) : public de l'Apec")
    if _kleene_or([profile.cadre, profile.young_graduate]) is None:
        missing.update(f for f in ("cadre", "young_graduate") if getattr(profile, f) is None)

    # Cap emploi: bénéficiaires de l'obligation d'emploi.
    if profile.boeth:
        fired.add("R-CAPEMPLOI-BOETH", "bénéficiaire de l'obligation d'emploi : public de Cap emploi")
    elif profile.boeth is None:
        missing.add("boeth")

    # France Travail: job seekers, by status or by registration.
    is_job_seeker = _kleene_or(
        [None if status is None else status == EmploymentStatus.JOB_SEEKER, profile.job_seeker]
    )
    if is_job_seeker:
        fired.add("R-FT-JOBSEEKER", "demandeur d'emploi : public de France Travail")
    elif is_job_seeker is None:
        missing.update(f for f in ("employment_status", "job_seeker") if getattr(profile, f) is None)

    # Missions locales: aged 16 to 25 during the intake year.
    if profile.birth_year is None:
        missing.add("birth_year")
    else:
        age = day.year - profile.birth_year
        if ML_MIN_AGE <= age <= ML_MAX_AGE:
            fired.add("R-ML-AGE-16-25", f"{age} ans en {day.year} (16-25 ans) : public des Missions locales")

    # Regional operator: employed private sector and self-employed, never public agents.
    if status is None:
        missing.add("employment_status")
    elif status == EmploymentStatus.PUBLIC_AGENT:
        fired.add(PUBLIC_AGENT_RULE, "agent public : l'opérateur régional du CEP ne l'accompagne pas")
    elif status in REGIONAL_STATUSES:
        label = (
            "salarié(e) du secteur privé" if status == EmploymentStatus.PRIVATE_EMPLOYEE else "indépendant(e)"
        )
        fired.add("R-REGIONAL-COMPETENT", f"{label} : public de l'opérateur régional du CEP")

    for rule_id, public in _PUBLIC_OF_RULE.items():
        if rule_id in fired:
            publics.add(public)
    if kind in publics:
        fired.add(
            "R-NO-SELF-INFORM",
            f"la personne est déjà accueillie par {_KIND_LABEL[kind]} : "
            "pas d'information sur ce même opérateur",
        )
    inform = tuple(sorted(publics - {kind}, key=lambda k: k.value))

    field_order = list(Profile.model_fields)
    missing_fields = tuple(sorted(missing, key=field_order.index))
    competent: OrganisationKind | None = None
    if missing:
        fired.add("R-INCOMPLETE-PROFILE", f"champs inconnus, non présumés : {', '.join(missing_fields)}")
        decision_status: Status = "incomplete"
    else:
        decision_status = "decided"
        if kind in publics:
            competent = kind
            fired.add(
                "R-COMPETENT-CURRENT", f"{_KIND_LABEL[kind]} accompagne ce public et reste compétent(e)"
            )
        elif publics:
            competent = next(k for k in COMPETENCE_PRECEDENCE if k in publics)
            fired.add(
                "R-COMPETENT-PRECEDENCE",
                f"{_KIND_LABEL[kind]} n'accompagne pas ce public ; compétent : {_KIND_LABEL[competent]} "
                f"(ordre : {', '.join(k.value for k in COMPETENCE_PRECEDENCE)})",
            )
        else:
            fired.add(
                "R-NO-PUBLIC-MATCH", "aucun public d'opérateur du CEP ne correspond : orientation à décider"
            )

    rules, reasons = fired.ordered()
    return Decision(
        status=decision_status,
        competent_operator=competent,
        inform=inform,
        rules=rules,
        reasons=reasons,
        missing_fields=missing_fields,
        rejection_reason=None,
        ruleset_version=RULESET_VERSION,
        reference_version=reference.reference_version,
    )


def decide(intake: IntakeRegistered, reference: ReferenceData) -> Decision:
    """Decide for an intake event; its date is the local date of `envelope.occurred_at` in the region."""
    return decide_profile(
        operator_kind=intake.operator_kind,
        region_code=intake.region_code,
        departement_code=intake.departement_code,
        profile=intake.profile,
        on_date=intake.envelope.occurred_at,
        reference=reference,
    )


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


#: Years an intake document may name (the bounds of `Profile.birth_year`): anything else is a typo or an
#: attack, refused as malformed input rather than carried into date arithmetic.
MIN_YEAR = 1900
MAX_YEAR = 2100

#: Deepest JSON nesting `explain` accepts: an intake nests 2 deep (document, profile).
MAX_DEPTH = 16


def _year_in_range(value: date) -> date:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"year {value.year} is out of range ({MIN_YEAR}..{MAX_YEAR})")
    return value


class _ProfileDocument(_StrictModel):
    employment_status: EmploymentStatus | None = None
    cadre: bool | None = None
    young_graduate: bool | None = None
    boeth: bool | None = None
    birth_year: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    job_seeker: bool | None = None


class _IntakeDocument(_StrictModel):
    """An intake as `cep-bus rules explain` reads it: the Avro field names, no envelope."""

    operator_kind: OrganisationKind
    region_code: str = Field(pattern=REGION_CODE)
    departement_code: str = Field(pattern=DEPARTEMENT_CODE)
    occurred_at: str | None = Field(default=None, max_length=64)
    profile: _ProfileDocument
    operator_id: str | None = Field(default=None, pattern=ORG_ID)
    reception_site: str | None = Field(default=None, min_length=1, max_length=1000)
    channel: Channel | None = None
    purpose: IntakePurpose | None = None  # accepted as in the intake; no rule depends on it
    cep_requested_on: Annotated[date, AfterValidator(_year_in_range)] | None = None


def _short(value: Any, limit: int = 60) -> str:
    """A one-line, bounded description of an input value (never the repr of a whole huge value)."""
    if isinstance(value, str):
        text = repr(value[:limit]) + ("..." if len(value) > limit else "")
    elif isinstance(value, list | dict):
        text = f"a JSON {'array' if isinstance(value, list) else 'object'} of {len(value)}"
    else:
        text = repr(value)
    return text if len(text) <= limit + 10 else text[: limit + 7] + "..."


def _describe(error: ValidationError, limit: int = 5) -> str:
    items = error.errors()
    parts = []
    for item in items[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "document"
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown field {_short(where)}")
        elif item["type"] == "missing":
            parts.append(f"missing field {_short(where)}")
        else:
            parts.append(f"{where}: {item['msg']} (got {_short(item.get('input'))})")
    if len(items) > limit:
        parts.append(f"and {len(items) - limit} more")
    return " ".join("; ".join(parts).split())


def _parse_occurred_at(value: str | None) -> date | None:
    """A date, or a date-time (aware or naive), whose year is in MIN_YEAR..MAX_YEAR (in UTC when aware,
    so that the local date in any region is still a valid date)."""
    if value is None:
        return None
    on: date
    try:
        on = date.fromisoformat(value)
    except ValueError:
        try:
            on = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"occurred_at: not an ISO date or date-time: {_short(value)}") from None
    year = on.year
    if isinstance(on, datetime) and on.tzinfo is not None:
        try:
            year = on.astimezone(UTC).year
        except OverflowError:
            raise ValueError(f"occurred_at: {_short(value)} is out of range") from None
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"occurred_at: year {year} is out of range ({MIN_YEAR}..{MAX_YEAR})")
    return on


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of a JSON value, counted without recursion and no further than `limit + 1`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > limit:
                break
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_intake_json(data: bytes | str) -> dict[str, Any]:
    """The intake object `cep-bus rules explain` reads on stdin: strict UTF-8, one JSON object, nesting
    bounded; ValueError with a one-line message otherwise (never RecursionError or UnicodeError)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"the input is not UTF-8 text (byte {exc.start})") from None
    if not data.strip():
        raise ValueError("empty input: expected one JSON object (an intake)")
    try:
        document = json.loads(data)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, integers too long to convert
        raise ValueError(f"not JSON: {' '.join(str(exc).split())[:160]}") from None
    if not isinstance(document, dict):
        raise ValueError(f"an intake must be a JSON object, got {type(document).__name__}")
    return document


def explain(document: dict[str, Any], reference: ReferenceData | None = None) -> dict[str, Any]:
    """The decision for one intake given as a JSON object (Avro field names); `occurred_at`
    defaults to today in the region. Raises ValueError with a one-line message on a malformed document
    (wrong types, unknown fields, dates or years out of range, nesting deeper than MAX_DEPTH)."""
    if not isinstance(document, dict):
        raise ValueError(f"an intake must be a JSON object, got {type(document).__name__}")
    if _depth(document, MAX_DEPTH) > MAX_DEPTH:
        raise ValueError(f"the intake is nested deeper than {MAX_DEPTH} levels")
    try:
        text = json.dumps(document, ensure_ascii=False, allow_nan=False)
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the intake holds a lone surrogate (\\udXXX): not valid Unicode text") from None
    except ValueError:  # allow_nan=False
        raise ValueError("the intake is not plain JSON: NaN and Infinity are not JSON numbers") from None
    except (TypeError, RecursionError) as exc:
        raise ValueError(f"the intake is not plain JSON: {' '.join(str(exc).split())[:100]}") from None
    try:
        parsed = _IntakeDocument.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"malformed intake: {_describe(exc)}") from None
    ref = reference or load_reference()
    region = ref.regions.get(parsed.region_code)
    on = _parse_occurred_at(parsed.occurred_at)
    if on is None:
        on = datetime.now(region.zone).date() if region else date.today()
    profile = Profile(**parsed.profile.model_dump())
    decision = decide_profile(
        operator_kind=parsed.operator_kind,
        region_code=parsed.region_code,
        departement_code=parsed.departement_code,
        profile=profile,
        on_date=on,
        reference=ref,
    )
    day = _local_date(on, region)
    return {**decision.to_json_dict(), "on_date": day.isoformat()}
