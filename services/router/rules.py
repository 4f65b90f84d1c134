"""The regulation decision: who is competent for a person, and whom they must be told about.

Pure functions, no Kafka: the router calls `decide` on each `IntakeRegistered`; `cep-bus rules explain`
calls `decide_profile` on an intake typed by hand, once `rules_input.py` has checked it.

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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from cepbus.contract.models import (
    CEP_OPERATOR_KINDS,
    EmploymentStatus,
    IntakeRegistered,
    OrganisationKind,
    Profile,
)
from cepbus.contract.rule_ids import PUBLIC_AGENT_RULE
from cepbus.reference import ReferenceData, ReferenceDataError, Region

__all__ = [
    "COMPETENCE_PRECEDENCE",
    "RULES",
    "RULESET_VERSION",
    "Decision",
    "Rule",
    "decide",
    "decide_profile",
    "local_date",
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


def local_date(on: date, region: Region | None) -> date:
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


def _cep_kind(operator_kind: OrganisationKind | str) -> OrganisationKind | None:
    """The operator kind if it is one of the five kinds of CEP operator, else None."""
    try:
        kind = OrganisationKind(operator_kind)
    except ValueError:
        return None
    return kind if kind in CEP_OPERATOR_KINDS else None


def _date_rejection(profile: Profile, day: date, region: Region, reference: ReferenceData) -> Decision | None:
    """The rejection of an intake dated before the region's opening, or of a person born after it."""
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
    return None


def _apec_public(profile: Profile, day: date, fired: _Fired, missing: set[str]) -> None:
    """Apec: cadres and young graduates."""
    if profile.cadre:
        fired.add("R-APEC-CADRE", "cadre : public de l'Apec")
    if profile.young_graduate:
        fired.add("R-APEC-YOUNG-GRAD", "jeune diplômé(e) : public de l'Apec")
    if _kleene_or([profile.cadre, profile.young_graduate]) is None:
        missing.update(f for f in ("cadre", "young_graduate") if getattr(profile, f) is None)


def _cap_emploi_public(profile: Profile, day: date, fired: _Fired, missing: set[str]) -> None:
    """Cap emploi: bénéficiaires de l'obligation d'emploi."""
    if profile.boeth:
        fired.add("R-CAPEMPLOI-BOETH", "bénéficiaire de l'obligation d'emploi : public de Cap emploi")
    elif profile.boeth is None:
        missing.add("boeth")


def _france_travail_public(profile: Profile, day: date, fired: _Fired, missing: set[str]) -> None:
    """France Travail: job seekers, by status or by registration."""
    status = profile.employment_status
    is_job_seeker = _kleene_or(
        [None if status is None else status == EmploymentStatus.JOB_SEEKER, profile.job_seeker]
    )
    if is_job_seeker:
        fired.add("R-FT-JOBSEEKER", "demandeur d'emploi : public de France Travail")
    elif is_job_seeker is None:
        missing.update(f for f in ("employment_status", "job_seeker") if getattr(profile, f) is None)


def _mission_locale_public(profile: Profile, day: date, fired: _Fired, missing: set[str]) -> None:
    """Missions locales: aged 16 to 25 during the intake year."""
    if profile.birth_year is None:
        missing.add("birth_year")
        return
    age = day.year - profile.birth_year
    if ML_MIN_AGE <= age <= ML_MAX_AGE:
        fired.add("R-ML-AGE-16-25", f"{age} ans en {day.year} (16-25 ans) : public des Missions locales")


def _regional_public(profile: Profile, day: date, fired: _Fired, missing: set[str]) -> None:
    """Regional operator: employed private sector and self-employed, never public agents."""
    status = profile.employment_status
    if status is None:
        missing.add("employment_status")
    elif status == EmploymentStatus.PUBLIC_AGENT:
        fired.add(PUBLIC_AGENT_RULE, "agent public : l'opérateur régional du CEP ne l'accompagne pas")
    elif status in REGIONAL_STATUSES:
        label = (
            "salarié(e) du secteur privé" if status == EmploymentStatus.PRIVATE_EMPLOYEE else "indépendant(e)"
        )
        fired.add("R-REGIONAL-COMPETENT", f"{label} : public de l'opérateur régional du CEP")


#: One step per public: each fires its rules and notes the unknown fields it needed.
_PUBLIC_STEPS: tuple[Callable[[Profile, date, _Fired, set[str]], None], ...] = (
    _apec_public,
    _cap_emploi_public,
    _france_travail_public,
    _mission_locale_public,
    _regional_public,
)


def _competent(
    kind: OrganisationKind, publics: set[OrganisationKind], fired: _Fired
) -> OrganisationKind | None:
    """The competent operator of a complete profile (see the module doc for the precedence)."""
    if kind in publics:
        fired.add("R-COMPETENT-CURRENT", f"{_KIND_LABEL[kind]} accompagne ce public et reste compétent(e)")
        return kind
    if publics:
        competent = next(k for k in COMPETENCE_PRECEDENCE if k in publics)
        fired.add(
            "R-COMPETENT-PRECEDENCE",
            f"{_KIND_LABEL[kind]} n'accompagne pas ce public ; compétent : {_KIND_LABEL[competent]} "
            f"(ordre : {', '.join(k.value for k in COMPETENCE_PRECEDENCE)})",
        )
        return competent
    fired.add("R-NO-PUBLIC-MATCH", "aucun public d'opérateur du CEP ne correspond : orientation à décider")
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
    kind = _cep_kind(operator_kind)
    if kind is None:
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
    day = local_date(on_date, region)
    if rejection := _date_rejection(profile, day, region, reference):
        return rejection

    fired = _Fired()
    missing: set[str] = set()
    for step in _PUBLIC_STEPS:
        step(profile, day, fired, missing)
    publics = {public for rule_id, public in _PUBLIC_OF_RULE.items() if rule_id in fired}
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
    else:
        competent = _competent(kind, publics, fired)

    rules, reasons = fired.ordered()
    return Decision(
        status="incomplete" if missing else "decided",
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
