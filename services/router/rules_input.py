"""The input of `cep-bus rules explain`: one intake as a JSON object (the Avro intake's field names, no
envelope), read from untrusted bytes and checked field by field before the pure decision (`rules.py`)
sees it.

Why apart from the rules: the decision trusts its typed arguments; everything that can go wrong with a
document typed by hand or pasted from elsewhere (not UTF-8, not JSON, duplicate keys, deep nesting,
wrong types, unknown fields, dates or years out of range) ends here as a ValueError with a one-line
message, which the command prints before exiting 2, never a traceback.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from cepbus.contract.models import (
    DEPARTEMENT_CODE,
    ORG_ID,
    REGION_CODE,
    Channel,
    EmploymentStatus,
    IntakePurpose,
    OrganisationKind,
    Profile,
)
from cepbus.reference import ReferenceData, load_reference
from cepbus.untrusted_json import EmptyInput, MalformedJson, loads_strict, nesting_depth, one_line, short
from services.router.rules import decide_profile, local_date

__all__ = ["MAX_DEPTH", "MAX_YEAR", "MIN_YEAR", "explain", "parse_intake_json"]

#: Years an intake document may name (the bounds of `Profile.birth_year`): anything else is a typo or an
#: attack, refused as malformed input rather than carried into date arithmetic.
MIN_YEAR = 1900
MAX_YEAR = 2100

#: Deepest JSON nesting `explain` accepts: an intake nests 2 deep (document, profile).
MAX_DEPTH = 16

#: Failing fields named in one message.
_ERRORS_SHOWN = 5


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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
            raise ValueError(f"occurred_at: not an ISO date or date-time: {short(value)}") from None
    year = on.year
    if isinstance(on, datetime) and on.tzinfo is not None:
        try:
            year = on.astimezone(UTC).year
        except OverflowError:
            raise ValueError(f"occurred_at: {short(value)} is out of range") from None
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"occurred_at: year {year} is out of range ({MIN_YEAR}..{MAX_YEAR})")
    return on


def parse_intake_json(data: bytes | str) -> dict[str, Any]:
    """The intake object `cep-bus rules explain` reads on stdin: strict UTF-8, one JSON object, no
    duplicate key, nesting bounded; ValueError with a one-line message otherwise (never RecursionError or
    UnicodeError)."""
    try:
        document = loads_strict(data, max_depth=MAX_DEPTH)
    except EmptyInput:
        raise ValueError("empty input: expected one JSON object (an intake)") from None
    except MalformedJson as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(document, dict):
        raise ValueError(f"an intake must be a JSON object, got {type(document).__name__}")
    return document


def _validated(document: dict[str, Any]) -> _IntakeDocument:
    """The document's fields checked by type, from its JSON text: what a caller built in Python (NaN, a
    lone surrogate, a non-JSON type) is refused as the same one-line ValueError as bad JSON."""
    if nesting_depth(document, MAX_DEPTH) > MAX_DEPTH:
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
        return _IntakeDocument.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"malformed intake: {one_line(exc, limit=_ERRORS_SHOWN)}") from None


def explain(document: dict[str, Any], reference: ReferenceData | None = None) -> dict[str, Any]:
    """The decision for one intake given as a JSON object (Avro field names); `occurred_at`
    defaults to today in the region. Raises ValueError with a one-line message on a malformed document
    (wrong types, unknown fields, dates or years out of range, nesting deeper than MAX_DEPTH)."""
    if not isinstance(document, dict):
        raise ValueError(f"an intake must be a JSON object, got {type(document).__name__}")
    parsed = _validated(document)
    ref = reference or load_reference()
    region = ref.regions.get(parsed.region_code)
    on = _parse_occurred_at(parsed.occurred_at)
    if on is None:
        on = datetime.now(region.zone).date() if region else date.today()
    decision = decide_profile(
        operator_kind=parsed.operator_kind,
        region_code=parsed.region_code,
        departement_code=parsed.departement_code,
        profile=Profile(**parsed.profile.model_dump()),
        on_date=on,
        reference=ref,
    )
    day = local_date(on, region)
    return {**decision.to_json_dict(), "on_date": day.isoformat()}
