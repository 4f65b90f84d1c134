"""The regulation decision: one row per rule, incomplete and rejected cases, and properties."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cepbus.contract.models import (
    CEP_OPERATOR_KINDS,
    Channel,
    EmploymentStatus,
    IntakeRegistered,
    OrganisationKind,
    Profile,
    new_envelope,
)
from cepbus.reference import load_reference
from services.router.rules import (
    COMPETENCE_PRECEDENCE,
    RULES,
    RULESET_VERSION,
    Decision,
    decide,
    decide_profile,
)
from services.router.rules_input import explain

K = OrganisationKind
ON = date(2021, 6, 1)
REF = load_reference()

#: A complete profile that belongs to no specialised public: a 40-year-old private employee.
BASE = {
    "employment_status": EmploymentStatus.PRIVATE_EMPLOYEE,
    "cadre": False,
    "young_graduate": False,
    "boeth": False,
    "birth_year": 1981,
    "job_seeker": False,
}


def profile(**changes: Any) -> Profile:
    return Profile(**{**BASE, **changes})


def run(
    operator_kind: K = K.REGIONAL_CEP,
    on: date = ON,
    region: str = "11",
    departement: str = "75",
    **changes: Any,
) -> Decision:
    return decide_profile(
        operator_kind=operator_kind,
        region_code=region,
        departement_code=departement,
        profile=profile(**changes),
        on_date=on,
        reference=REF,
    )


@dataclass(frozen=True)
class Row:
    """One rule, its legal basis, and a case that fires it."""

    rule: str
    basis: str
    operator_kind: K
    changes: dict[str, Any]
    competent: K | None
    inform: tuple[K, ...]
    also: tuple[str, ...] = field(default=())

    @property
    def test_id(self) -> str:
        return f"{self.rule}--{self.basis}"


ROWS = [
    Row("R-APEC-CADRE", "L6111-6", K.REGIONAL_CEP, {"cadre": True}, K.REGIONAL_CEP, (K.APEC,)),
    Row("R-APEC-YOUNG-GRAD", "L6111-6", K.REGIONAL_CEP, {"young_graduate": True}, K.REGIONAL_CEP, (K.APEC,)),
    Row(
        "R-CAPEMPLOI-BOETH",
        "L6111-6+L5212-13",
        K.REGIONAL_CEP,
        {"boeth": True},
        K.REGIONAL_CEP,
        (K.CAP_EMPLOI,),
    ),
    Row(
        "R-FT-JOBSEEKER",
        "L6111-6+L5312-1-status",
        K.REGIONAL_CEP,
        {"employment_status": EmploymentStatus.JOB_SEEKER},
        K.FRANCE_TRAVAIL,
        (K.FRANCE_TRAVAIL,),
        ("R-COMPETENT-PRECEDENCE",),
    ),
    Row(
        "R-FT-JOBSEEKER",
        "L6111-6+L5312-1-flag",
        K.REGIONAL_CEP,
        {"job_seeker": True},
        K.REGIONAL_CEP,
        (K.FRANCE_TRAVAIL,),
        ("R-REGIONAL-COMPETENT",),
    ),
    Row(
        "R-ML-AGE-16-25",
        "L6111-6+L5314-2-age16",
        K.REGIONAL_CEP,
        {"birth_year": 2005},
        K.REGIONAL_CEP,
        (K.MISSION_LOCALE,),
    ),
    Row(
        "R-ML-AGE-16-25",
        "L6111-6+L5314-2-age25",
        K.REGIONAL_CEP,
        {"birth_year": 1996},
        K.REGIONAL_CEP,
        (K.MISSION_LOCALE,),
    ),
    Row(
        "R-PUBLIC-AGENT",
        "L6111-6",
        K.REGIONAL_CEP,
        {"employment_status": EmploymentStatus.PUBLIC_AGENT},
        None,
        (),
        ("R-NO-PUBLIC-MATCH",),
    ),
    Row(
        "R-REGIONAL-COMPETENT",
        "L6111-6+loi-2018-771-employee",
        K.REGIONAL_CEP,
        {},
        K.REGIONAL_CEP,
        (),
        ("R-NO-SELF-INFORM", "R-COMPETENT-CURRENT"),
    ),
    Row(
        "R-REGIONAL-COMPETENT",
        "L6111-6+loi-2018-771-self-employed-at-apec",
        K.APEC,
        {"employment_status": EmploymentStatus.SELF_EMPLOYED},
        K.REGIONAL_CEP,
        (K.REGIONAL_CEP,),
        ("R-COMPETENT-PRECEDENCE",),
    ),
    Row(
        "R-NO-SELF-INFORM",
        "choix-eclaire",
        K.APEC,
        {"cadre": True},
        K.APEC,
        (K.REGIONAL_CEP,),
        ("R-APEC-CADRE", "R-COMPETENT-CURRENT"),
    ),
    Row(
        "R-COMPETENT-CURRENT",
        "liberte-de-choix",
        K.CAP_EMPLOI,
        {"boeth": True, "cadre": True},
        K.CAP_EMPLOI,
        (K.APEC, K.REGIONAL_CEP),
        ("R-NO-SELF-INFORM",),
    ),
    Row(
        "R-COMPETENT-PRECEDENCE",
        "L6111-6-public-agent-cadre-boeth",
        K.REGIONAL_CEP,
        {"employment_status": EmploymentStatus.PUBLIC_AGENT, "cadre": True, "boeth": True},
        K.CAP_EMPLOI,
        (K.APEC, K.CAP_EMPLOI),
        ("R-PUBLIC-AGENT",),
    ),
    Row(
        "R-NO-PUBLIC-MATCH",
        "L6111-6",
        K.REGIONAL_CEP,
        {"employment_status": EmploymentStatus.NOT_EMPLOYED},
        None,
        (),
    ),
    Row(
        "R-APEC-CADRE+R-CAPEMPLOI-BOETH",
        "L6111-6-combination",
        K.REGIONAL_CEP,
        {"cadre": True, "boeth": True},
        K.REGIONAL_CEP,
        (K.APEC, K.CAP_EMPLOI),
        ("R-APEC-CADRE", "R-CAPEMPLOI-BOETH"),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.test_id for row in ROWS])
def test_rule_table(row: Row) -> None:
    decision = run(row.operator_kind, **row.changes)
    assert decision.status == "decided"
    for rule in row.rule.split("+"):
        assert rule in decision.rules
    for rule in row.also:
        assert rule in decision.rules
    assert decision.competent_operator == row.competent
    assert decision.inform == row.inform
    assert decision.missing_fields == ()
    assert decision.rejection_reason is None
    assert len(decision.reasons) == len(decision.rules)
    for rule, reason in zip(decision.rules, decision.reasons, strict=True):
        assert reason.startswith(f"{rule}: ")
        assert RULES[rule].legal_basis in reason


@pytest.mark.parametrize(("birth_year", "fires"), [(2006, False), (2005, True), (1996, True), (1995, False)])
def test_mission_locale_age_bounds(birth_year: int, fires: bool) -> None:
    assert ("R-ML-AGE-16-25" in run(birth_year=birth_year).rules) is fires


def test_every_rule_has_meaning_and_legal_basis() -> None:
    for rule_id, rule in RULES.items():
        assert rule_id.startswith("R-") and rule.id == rule_id
        assert rule.meaning and rule.legal_basis
    assert set(COMPETENCE_PRECEDENCE) == CEP_OPERATOR_KINDS


def test_versions_are_named() -> None:
    decision = run()
    assert decision.ruleset_version == RULESET_VERSION
    assert decision.reference_version == REF.reference_version


# --- incomplete ---------------------------------------------------------------------------------


def test_empty_profile_is_incomplete_not_defaulted() -> None:
    decision = decide_profile(
        operator_kind=K.REGIONAL_CEP,
        region_code="11",
        departement_code="75",
        profile=Profile(),
        on_date=ON,
        reference=REF,
    )
    assert decision.status == "incomplete"
    assert decision.missing_fields == tuple(Profile.model_fields)
    assert decision.competent_operator is None
    assert decision.inform == ()
    assert decision.rules == ("R-INCOMPLETE-PROFILE",)


@pytest.mark.parametrize(
    ("changes", "missing", "still_fired", "inform"),
    [
        pytest.param(
            {"boeth": None, "cadre": True}, ("boeth",), ("R-APEC-CADRE",), (K.APEC,), id="boeth-unknown"
        ),
        pytest.param({"cadre": None}, ("cadre",), (), (), id="cadre-unknown-not-young-grad"),
        pytest.param({"young_graduate": None}, ("young_graduate",), (), (), id="young-grad-unknown"),
        pytest.param(
            {"birth_year": None, "boeth": True},
            ("birth_year",),
            ("R-CAPEMPLOI-BOETH",),
            (K.CAP_EMPLOI,),
            id="age-unknown",
        ),
        pytest.param(
            {"job_seeker": None}, ("job_seeker",), ("R-REGIONAL-COMPETENT",), (), id="registration-unknown"
        ),
        pytest.param(
            {"employment_status": None, "job_seeker": False},
            ("employment_status",),
            (),
            (),
            id="status-unknown",
        ),
        pytest.param(
            {"employment_status": None, "job_seeker": None},
            ("employment_status", "job_seeker"),
            (),
            (),
            id="status-and-registration-unknown",
        ),
    ],
)
def test_incomplete_profiles(
    changes: dict[str, Any], missing: tuple[str, ...], still_fired: tuple[str, ...], inform: tuple[K, ...]
) -> None:
    decision = run(**changes)
    assert decision.status == "incomplete"
    assert decision.missing_fields == missing
    assert decision.competent_operator is None
    assert "R-INCOMPLETE-PROFILE" in decision.rules
    for rule in still_fired:
        assert rule in decision.rules
    assert decision.inform == inform
    assert all(name in decision.reasons[decision.rules.index("R-INCOMPLETE-PROFILE")] for name in missing)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"cadre": True, "young_graduate": None}, id="cadre-makes-young-grad-irrelevant"),
        pytest.param({"young_graduate": True, "cadre": None}, id="young-grad-makes-cadre-irrelevant"),
        pytest.param(
            {"employment_status": EmploymentStatus.JOB_SEEKER, "job_seeker": None},
            id="status-makes-flag-irrelevant",
        ),
    ],
)
def test_fields_that_cannot_change_the_decision_are_not_required(changes: dict[str, Any]) -> None:
    assert run(**changes).status == "decided"


# --- rejected -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "departement", "on", "status"),
    [
        pytest.param("03", "973", date(2020, 2, 29), "rejected", id="guyane-before-2020-03-01"),
        pytest.param("03", "973", date(2020, 3, 1), "decided", id="guyane-on-2020-03-01"),
        pytest.param("04", "974", date(2020, 2, 29), "rejected", id="reunion-before-2020-03-01"),
        pytest.param("04", "974", date(2020, 3, 1), "decided", id="reunion-on-2020-03-01"),
        pytest.param("11", "75", date(2019, 12, 31), "rejected", id="idf-before-2020-01-01"),
        pytest.param("11", "75", date(2020, 1, 1), "decided", id="idf-on-2020-01-01"),
        pytest.param("06", "976", date(2020, 1, 1), "decided", id="mayotte-on-2020-01-01"),
        pytest.param("01", "971", date(2020, 2, 15), "decided", id="guadeloupe-in-february-2020"),
    ],
)
def test_opening_dates(region: str, departement: str, on: date, status: str) -> None:
    decision = run(region=region, departement=departement, on=on)
    assert decision.status == status
    if status == "rejected":
        assert decision.rules == ("R-REJECT-BEFORE-OPENING",)
        assert decision.rejection_reason and "opened" in decision.rejection_reason
        assert decision.inform == () and decision.competent_operator is None


@pytest.mark.parametrize(
    ("region", "departement", "instant", "status"),
    [
        pytest.param(
            "11", "75", datetime(2019, 12, 31, 23, 30, tzinfo=UTC), "decided", id="paris-already-new-year"
        ),
        pytest.param(
            "01", "971", datetime(2020, 1, 1, 3, 0, tzinfo=UTC), "rejected", id="guadeloupe-still-31-dec"
        ),
        pytest.param(
            "04", "974", datetime(2020, 2, 29, 21, 0, tzinfo=UTC), "decided", id="reunion-already-1-march"
        ),
    ],
)
def test_intake_date_is_local_to_the_region(
    region: str, departement: str, instant: datetime, status: str
) -> None:
    assert run(region=region, departement=departement, on=instant).status == status


@pytest.mark.parametrize(
    ("region", "departement", "fragment"),
    [
        pytest.param("11", "13", "is in region 93", id="departement-not-in-region"),
        pytest.param("99", "75", "unknown region code", id="unknown-region"),
        pytest.param("11", "975", "unknown département code", id="unknown-departement"),
    ],
)
def test_location_rejections(region: str, departement: str, fragment: str) -> None:
    decision = run(region=region, departement=departement)
    assert decision.status == "rejected"
    assert decision.rules == ("R-REJECT-LOCATION",)
    assert decision.rejection_reason and fragment in decision.rejection_reason


def test_non_cep_operator_is_rejected() -> None:
    decision = run(operator_kind=K.OPCO)
    assert decision.status == "rejected"
    assert decision.rules == ("R-REJECT-NOT-CEP-OPERATOR",)


def test_birth_year_after_intake_is_rejected() -> None:
    decision = run(birth_year=2030)
    assert decision.status == "rejected"
    assert decision.rules == ("R-REJECT-BIRTH-YEAR",)


# --- decide() on events, JSON -------------------------------------------------------------------


def _intake(occurred_at: datetime, **changes: Any) -> IntakeRegistered:
    return IntakeRegistered(
        envelope=new_envelope(
            IntakeRegistered, producer_org_id="cep-r11", person_pseudonym="p-rules", occurred_at=occurred_at
        ),
        operator_id="cep-r11",
        operator_kind=K.REGIONAL_CEP,
        region_code="11",
        departement_code="75",
        reception_site="Paris",
        channel=Channel.IN_PERSON,
        profile=profile(**changes),
    )


def test_decide_uses_the_envelope_date() -> None:
    assert decide(_intake(datetime(2019, 12, 31, 12, tzinfo=UTC)), REF).status == "rejected"
    decision = decide(_intake(datetime(2021, 6, 1, 12, tzinfo=UTC), cadre=True, boeth=True), REF)
    assert decision.status == "decided"
    assert decision.inform == (K.APEC, K.CAP_EMPLOI)


def test_to_json_dict() -> None:
    document = run(cadre=True).to_json_dict()
    assert {
        "status",
        "competent_operator",
        "inform",
        "rules",
        "reasons",
        "ruleset_version",
        "reference_version",
        "missing_fields",
        "rejection_reason",
    } <= set(document)
    assert document["inform"] == ["apec"]
    assert document["competent_operator"] == "regional_cep"
    assert json.loads(json.dumps(document)) == document


# --- explain (CLI) ------------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "operator_kind": "regional_cep",
    "region_code": "84",
    "departement_code": "69",
    "occurred_at": "2022-09-15",
    "profile": {
        "employment_status": "private_employee",
        "cadre": True,
        "young_graduate": False,
        "boeth": True,
        "birth_year": 1975,
        "job_seeker": False,
    },
}


def test_explain_matches_decide_profile() -> None:
    result = explain(GOOD)
    expected = decide_profile(
        operator_kind=K.REGIONAL_CEP,
        region_code="84",
        departement_code="69",
        profile=Profile(**GOOD["profile"]),
        on_date=date(2022, 9, 15),
        reference=REF,
    ).to_json_dict()
    assert {key: result[key] for key in expected} == expected
    assert result["inform"] == ["apec", "cap_emploi"]
    assert result["on_date"] == "2022-09-15"


def test_explain_accepts_the_other_intake_fields_and_a_datetime() -> None:
    document = {
        **GOOD,
        "occurred_at": "2019-12-31T23:30:00+00:00",
        "operator_id": "cep-r84",
        "reception_site": "Lyon",
        "channel": "video",
    }
    result = explain(document)
    assert result["status"] == "decided"
    assert result["on_date"] == "2020-01-01"


def test_explain_defaults_the_date_to_today() -> None:
    result = explain({key: value for key, value in GOOD.items() if key != "occurred_at"})
    today = date.today()
    assert result["on_date"] in {(today + timedelta(days=d)).isoformat() for d in (-1, 0, 1)}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param({**GOOD, "colour": "blue"}, "unknown field 'colour'", id="unknown-field"),
        pytest.param(
            {**GOOD, "profile": {**GOOD["profile"], "rqth": True}},
            "unknown field 'profile.rqth'",
            id="unknown-profile-field",
        ),
        pytest.param(
            {**GOOD, "profile": {**GOOD["profile"], "cadre": "yes"}}, "profile.cadre", id="wrong-type-bool"
        ),
        pytest.param(
            {**GOOD, "profile": {**GOOD["profile"], "birth_year": "1975"}},
            "profile.birth_year",
            id="wrong-type-int",
        ),
        pytest.param({**GOOD, "operator_kind": "pole_emploi"}, "operator_kind", id="unknown-operator-kind"),
        pytest.param(
            {**GOOD, "profile": {**GOOD["profile"], "employment_status": "retired"}},
            "profile.employment_status",
            id="unknown-employment-status",
        ),
        pytest.param(
            {key: v for key, v in GOOD.items() if key != "profile"},
            "missing field 'profile'",
            id="missing-profile",
        ),
        pytest.param({**GOOD, "region_code": 84}, "region_code", id="region-code-not-a-string"),
        pytest.param({**GOOD, "occurred_at": "15/09/2022"}, "occurred_at", id="bad-date"),
        pytest.param(["not", "an", "object"], "JSON object", id="not-an-object"),
    ],
)
def test_explain_refuses_malformed_documents(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        explain(document)


# --- properties ---------------------------------------------------------------------------------

_DEPARTEMENTS = sorted(REF.departements.values(), key=lambda d: d.code)
_SPECIALISED = {
    "apec": K.APEC,
    "cap_emploi": K.CAP_EMPLOI,
    "france_travail": K.FRANCE_TRAVAIL,
    "mission_locale": K.MISSION_LOCALE,
}

maybe_bool = st.one_of(st.none(), st.booleans())
profiles = st.builds(
    Profile,
    employment_status=st.one_of(st.none(), st.sampled_from(EmploymentStatus)),
    cadre=maybe_bool,
    young_graduate=maybe_bool,
    boeth=maybe_bool,
    birth_year=st.one_of(st.none(), st.integers(min_value=1940, max_value=2012)),
    job_seeker=maybe_bool,
)
places = st.sampled_from(_DEPARTEMENTS)
operator_kinds = st.sampled_from(sorted(CEP_OPERATOR_KINDS))
open_dates = st.dates(min_value=date(2020, 3, 1), max_value=date(2030, 12, 31))


def _publics(p: Profile, on: date) -> set[K]:
    """The specialised publics a profile certainly belongs to (independent oracle)."""
    publics = set()
    if p.cadre or p.young_graduate:
        publics.add(K.APEC)
    if p.boeth:
        publics.add(K.CAP_EMPLOI)
    if p.job_seeker or p.employment_status == EmploymentStatus.JOB_SEEKER:
        publics.add(K.FRANCE_TRAVAIL)
    if p.birth_year is not None and 16 <= on.year - p.birth_year <= 25:
        publics.add(K.MISSION_LOCALE)
    return publics


def _decide(kind: K, place: Any, p: Profile, on: date) -> Decision:
    return decide_profile(
        operator_kind=kind,
        region_code=place.region_code,
        departement_code=place.code,
        profile=p,
        on_date=on,
        reference=REF,
    )


@settings(max_examples=400, deadline=None)
@given(kind=operator_kinds, place=places, p=profiles, on=open_dates)
def test_property_decisions_are_sound(kind: K, place: Any, p: Profile, on: date) -> None:
    decision = _decide(kind, place, p, on)
    # Deterministic, including on an equal but distinct profile object.
    assert decision == _decide(kind, place, Profile(**p.model_dump()), on)
    assert decision.status in {"decided", "incomplete"}
    # Every decision names at least one known rule, with one reason each.
    assert decision.rules and set(decision.rules) <= set(RULES)
    assert len(decision.reasons) == len(decision.rules)
    assert len(set(decision.rules)) == len(decision.rules)
    # inform is sorted, unique, and never the kind the person is with.
    values = [k.value for k in decision.inform]
    assert values == sorted(set(values))
    assert kind not in decision.inform
    # Every specialised public the person certainly belongs to is told of, wherever they are.
    assert _publics(p, on) - {kind} <= set(decision.inform)
    # Incomplete exactly when a field is missing; missing fields are really unknown.
    assert (decision.status == "incomplete") == bool(decision.missing_fields)
    assert all(getattr(p, name) is None for name in decision.missing_fields)
    if decision.status == "decided":
        competent = decision.competent_operator
        assert competent is None or competent == kind or competent in decision.inform
        if p.employment_status == EmploymentStatus.PUBLIC_AGENT:
            assert "R-PUBLIC-AGENT" in decision.rules
            assert competent != K.REGIONAL_CEP
    else:
        assert decision.competent_operator is None


@settings(max_examples=300, deadline=None)
@given(place=places, p=profiles, on=open_dates)
def test_property_specialised_publics_at_a_regional_operator_are_told(
    place: Any, p: Profile, on: date
) -> None:
    decision = _decide(K.REGIONAL_CEP, place, p, on)
    told = set(decision.inform)
    if p.cadre or p.young_graduate:
        assert K.APEC in told
    if p.boeth:
        assert K.CAP_EMPLOI in told
    if p.job_seeker or p.employment_status == EmploymentStatus.JOB_SEEKER:
        assert K.FRANCE_TRAVAIL in told
    if p.birth_year is not None and 16 <= on.year - p.birth_year <= 25:
        assert K.MISSION_LOCALE in told
    assert K.REGIONAL_CEP not in told


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(sorted(K)),
    place=places,
    p=profiles,
    on=st.dates(min_value=date(2019, 1, 1), max_value=date(2030, 12, 31)),
    region=st.sampled_from(sorted(REF.regions)),
)
def test_property_any_input_gets_a_named_decision(
    kind: K, place: Any, p: Profile, on: date, region: str
) -> None:
    """Including wrong regions, early dates and non-CEP kinds: never an exception, always a rule."""
    decision = _decide(kind, place.model_copy(update={"region_code": region}), p, on)
    assert decision.rules
    assert decision == _decide(kind, place.model_copy(update={"region_code": region}), p, on)
    if decision.status == "rejected":
        assert decision.rejection_reason and decision.inform == ()
    json.dumps(decision.to_json_dict())
