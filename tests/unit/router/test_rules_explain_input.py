"""`cep-bus rules explain` on hostile stdin: every input that is not one well-formed intake ends in exactly
one line on stderr and exit 2, never a traceback (deep nesting, dates and years out of range, booleans for
integers, non-objects, invalid UTF-8, empty input, random JSON)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cepbus_app.cli import app
from services.router.rules_input import MAX_DEPTH, MAX_YEAR, MIN_YEAR, explain, parse_intake_json

runner = CliRunner()

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


def explain_cli(data: bytes | str) -> Any:
    return runner.invoke(app, ["rules", "explain"], input=data)


def assert_refused(result: Any) -> str:
    """Exit 2 by the command itself, no traceback, one line on stderr, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cep-bus rules explain: invalid intake: "), result.stderr
    assert result.stdout == "" and "Traceback" not in result.output
    return str(lines[0])


def with_profile(**changes: Any) -> dict[str, Any]:
    return {**GOOD, "profile": {**GOOD["profile"], **changes}}


def test_a_good_intake_still_explains() -> None:
    result = explain_cli(json.dumps(GOOD))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inform"] == ["apec", "cap_emploi"]


def _nested(depth: int, opener: str, closer: str, inner: str = "") -> str:
    return opener * depth + inner + closer * depth


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(_nested(100_000, "[", "]"), "nested deeper", id="100000-nested-arrays"),
        pytest.param(_nested(100_000, '{"a":', "}", "1"), "nested deeper", id="100000-nested-objects"),
        pytest.param(
            json.dumps({**GOOD, "x": json.loads(_nested(500, "[", "]"))}),
            "nested deeper",
            id="500-deep-inside",
        ),
        pytest.param(b"\xff\xfe{}", "not UTF-8", id="invalid-utf8"),
        pytest.param(json.dumps(GOOD).encode()[:-1] + b"\xc3", "not UTF-8", id="truncated-utf8"),
        pytest.param(b"", "empty input", id="empty-stdin"),
        pytest.param(b"   \n", "empty input", id="blank-stdin"),
        pytest.param("[1, 2]", "must be a JSON object, got list", id="json-array"),
        pytest.param('"intake"', "must be a JSON object, got str", id="json-string"),
        pytest.param("null", "must be a JSON object, got NoneType", id="json-null"),
        pytest.param("42", "must be a JSON object, got int", id="json-number"),
        pytest.param("{", "not JSON", id="truncated-json"),
        pytest.param("1" * 5000, "not JSON", id="huge-integer-literal"),
        pytest.param('{"a": NaN}', "NaN", id="nan"),
        pytest.param('{"a": "\\ud800"}', "lone surrogate", id="lone-surrogate"),
    ],
)
def test_unreadable_stdin(data: str | bytes, message: str) -> None:
    assert message in assert_refused(explain_cli(data))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(
            {**GOOD, "occurred_at": "9999-12-31T23:59:59+14:00"},
            "year 9999 is out of range",
            id="year-9999-plus-14",
        ),
        pytest.param({**GOOD, "occurred_at": "9999-12-31T23:59:59-14:00"}, "out of range", id="overflow-utc"),
        pytest.param(
            {**GOOD, "occurred_at": "0001-01-01T00:00:00+14:00"}, "out of range", id="underflow-utc"
        ),
        pytest.param({**GOOD, "occurred_at": "9999-12-31"}, "year 9999 is out of range", id="year-9999"),
        pytest.param({**GOOD, "occurred_at": "10000-01-01"}, "occurred_at", id="year-10000"),
        pytest.param({**GOOD, "occurred_at": "0000-01-01"}, "occurred_at", id="year-0"),
        pytest.param({**GOOD, "occurred_at": "1899-12-31"}, "year 1899 is out of range", id="year-1899"),
        pytest.param({**GOOD, "occurred_at": "2022-02-30"}, "occurred_at", id="no-such-day"),
        pytest.param({**GOOD, "occurred_at": 20220915}, "occurred_at", id="date-as-int"),
        pytest.param({**GOOD, "occurred_at": "2" * 10_000}, "occurred_at", id="huge-date-string"),
        pytest.param({**GOOD, "cep_requested_on": "0000-01-01"}, "cep_requested_on", id="requested-year-0"),
        pytest.param({**GOOD, "cep_requested_on": "9999-12-31"}, "cep_requested_on", id="requested-9999"),
        pytest.param(with_profile(birth_year=10**30), "profile.birth_year", id="birth-year-huge"),
        pytest.param(with_profile(birth_year=-5), "profile.birth_year", id="birth-year-negative"),
        pytest.param(with_profile(birth_year=True), "profile.birth_year", id="birth-year-bool"),
        pytest.param(with_profile(birth_year=1975.0), "profile.birth_year", id="birth-year-float"),
        pytest.param(with_profile(cadre=1), "profile.cadre", id="int-for-bool"),
        pytest.param({**GOOD, "region_code": True}, "region_code", id="bool-for-string"),
        pytest.param({**GOOD, "profile": []}, "profile", id="profile-array"),
        pytest.param({**GOOD, "reception_site": "x" * 100_000}, "reception_site", id="huge-string"),
        pytest.param({**GOOD, "x" * 10_000: 1}, "unknown field", id="huge-key"),
    ],
)
def test_out_of_range_and_wrongly_typed_fields(document: dict[str, Any], message: str) -> None:
    line = assert_refused(explain_cli(json.dumps(document)))
    assert message in line and len(line) < 1000
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        explain(document)


def test_explain_bounds_nesting_without_recursing() -> None:
    deep: Any = 1
    for _ in range(100_000):  # deeper than any recursion limit: built and checked iteratively
        deep = [deep]
    with pytest.raises(ValueError, match=f"deeper than {MAX_DEPTH}"):
        explain({**GOOD, "x": deep})
    with pytest.raises(ValueError, match="JSON object"):
        explain(deep)


def test_dates_at_the_bounds_still_decide() -> None:
    for occurred_at in ("1900-01-01T12:00:00+00:00", "2100-12-31T10:00:00+14:00", "2100-12-31"):
        result = explain_cli(json.dumps({**GOOD, "occurred_at": occurred_at}))
        assert result.exit_code == 0, result.output


# --- hypothesis -----------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
FIELD_NAMES = [*GOOD, "operator_id", "reception_site", "channel", "purpose", "cep_requested_on"]
PROFILE_NAMES = list(GOOD["profile"])


@st.composite
def intake_like(draw: st.DrawFn) -> Any:
    """GOOD with some fields (top level or profile) replaced, dropped or added with random JSON."""
    document = copy.deepcopy(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        in_profile = draw(st.booleans()) and isinstance(document.get("profile"), dict)
        target = document["profile"] if in_profile else document
        names = PROFILE_NAMES if target is not document else FIELD_NAMES
        name = draw(st.sampled_from(names))
        if draw(st.integers(0, 4)) == 0:
            target.pop(name, None)
        else:
            target[name] = draw(
                JSON
                | st.dates().map(str)
                | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
            )
    return document


def _exits_cleanly(result: Any) -> None:
    if result.exit_code == 0:
        assert isinstance(json.loads(result.stdout), dict)
    else:
        assert_refused(result)


@settings(max_examples=250, deadline=None)
@given(document=JSON | intake_like())
def test_random_json_documents_exit_cleanly(document: Any) -> None:
    _exits_cleanly(explain_cli(json.dumps(document)))
    if isinstance(document, dict):
        try:
            explain(document)
        except ValueError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_random_bytes_on_stdin_exit_cleanly(raw: bytes) -> None:
    _exits_cleanly(explain_cli(raw))
    try:
        parse_intake_json(raw)
    except ValueError as exc:
        assert "\n" not in str(exc)


DATE_TEXTS = (
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
    | st.dates().map(str)
    | st.text(alphabet="0123456789-:T+Z .", max_size=30)
)


@settings(max_examples=300, deadline=None)
@given(
    occurred_at=DATE_TEXTS,
    requested=st.none() | DATE_TEXTS,
    birth_year=st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
)
def test_random_dates_and_years_exit_cleanly(
    occurred_at: str, requested: str | None, birth_year: Any
) -> None:
    document = {**with_profile(birth_year=birth_year), "occurred_at": occurred_at}
    if requested is not None:
        document["cep_requested_on"] = requested
    result = explain_cli(json.dumps(document))
    _exits_cleanly(result)
    if result.exit_code == 0:  # only plausible dates are decided on (local dates: a day either side)
        assert MIN_YEAR - 1 <= int(json.loads(result.stdout)["on_date"][:4]) <= MAX_YEAR + 1
