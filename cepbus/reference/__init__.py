"""Reference data for the whole country: regions, départements and CEP operators' contact points.

The data lives in versioned JSON files (`cepbus/reference/data/*.json`) so that a placeholder can be
replaced by the published operator without touching code. Everything is validated at load: a
regulation decision taken on a wrong map of the country (a missing region, a département in the
wrong region, a region without its regional operator) would be silently wrong, so loading fails
loudly instead. Pure: no I/O beyond reading the package's own files.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cepbus.contract.models import CEP_OPERATOR_KINDS, DEPARTEMENT_CODE, ORG_ID, REGION_CODE, OrganisationKind
from cepbus.untrusted_json import DuplicateKeys, MalformedJson, loads_strict

__all__ = [
    "EXPECTED_DEPARTEMENT_COUNT",
    "EXPECTED_REGION_COUNT",
    "ORG_ID_PREFIX",
    "Departement",
    "Organisation",
    "ReferenceData",
    "ReferenceDataError",
    "Region",
    "load_reference",
    "load_reference_from",
]

#: 13 metropolitan regions + Guadeloupe, Martinique, Guyane, La Réunion, Mayotte (the 18 CEP lots).
EXPECTED_REGION_COUNT = 18
#: 96 metropolitan départements (2A/2B instead of 20) + 5 overseas.
EXPECTED_DEPARTEMENT_COUNT = 101

#: Id prefix of each CEP operator kind's contact point in a region: `<prefix>-r<region code>`.
ORG_ID_PREFIX: dict[OrganisationKind, str] = {
    OrganisationKind.REGIONAL_CEP: "cep",
    OrganisationKind.APEC: "apec",
    OrganisationKind.CAP_EMPLOI: "cap-emploi",
    OrganisationKind.FRANCE_TRAVAIL: "france-travail",
    OrganisationKind.MISSION_LOCALE: "mission-locale",
}

_DATA_FILES = ("regions.json", "departements.json", "organisations.json")


class ReferenceDataError(ValueError):
    """The reference data is inconsistent, or a code is not in it."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(_Frozen):
    """An INSEE region, one regional CEP lot."""

    code: str = Field(pattern=REGION_CODE)
    name: str = Field(min_length=1)
    population: int = Field(gt=0, description="Approximate (INSEE); weights a simulator, nothing legal.")
    opened_on: date = Field(description="Opening date of the regional CEP service.")
    timezone: str = Field(description="IANA zone: an intake's date is its local date in the region.")
    departements: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Departement(_Frozen):
    """An INSEE département, as INSEE writes its code ("01", "2A", "971")."""

    code: str = Field(pattern=DEPARTEMENT_CODE)
    name: str = Field(min_length=1)
    region_code: str = Field(pattern=REGION_CODE)


class Organisation(_Frozen):
    """A CEP operator (or its contact point) in one region.

    `placeholder` is true while the name is not the published operator's: it must be replaced
    before the notice text is shown to real people.
    """

    org_id: str = Field(pattern=ORG_ID)
    kind: OrganisationKind
    region_code: str = Field(pattern=REGION_CODE)
    name: str = Field(min_length=1)
    phone: str | None = None
    website: str | None = None
    note: str | None = None
    placeholder: bool = False


class _RegionsFile(_Frozen):
    version: str = Field(min_length=1)
    source: str | None = None
    regions: list[Region]


class _DepartementsFile(_Frozen):
    version: str = Field(min_length=1)
    source: str | None = None
    departements: list[Departement]


class _OrganisationsFile(_Frozen):
    version: str = Field(min_length=1)
    source: str | None = None
    organisations: list[Organisation]


def duplicates(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, sorted (for "duplicate ... ids" errors)."""
    return sorted(value for value, count in Counter(values).items() if count > 1)


class ReferenceData:
    """The validated, read-only map of regions, départements and operators."""

    def __init__(
        self,
        *,
        reference_version: str,
        regions: Iterable[Region],
        departements: Iterable[Departement],
        organisations: Iterable[Organisation],
    ) -> None:
        region_list = list(regions)
        dep_list = list(departements)
        org_list = list(organisations)
        errors: list[str] = []

        if dup := duplicates(r.code for r in region_list):
            errors.append(f"duplicate region codes: {', '.join(dup)}")
        if dup := duplicates(d.code for d in dep_list):
            errors.append(f"duplicate département codes: {', '.join(dup)}")
        if dup := duplicates(o.org_id for o in org_list):
            errors.append(f"duplicate organisation ids: {', '.join(dup)}")
        if len(region_list) != EXPECTED_REGION_COUNT:
            errors.append(f"expected {EXPECTED_REGION_COUNT} regions, found {len(region_list)}")
        if len(dep_list) != EXPECTED_DEPARTEMENT_COUNT:
            errors.append(f"expected {EXPECTED_DEPARTEMENT_COUNT} départements, found {len(dep_list)}")

        region_codes = {r.code for r in region_list}
        by_region: dict[str, list[str]] = {code: [] for code in region_codes}
        for dep in dep_list:
            if dep.region_code not in region_codes:
                errors.append(f"département {dep.code} points to unknown region {dep.region_code}")
            else:
                by_region[dep.region_code].append(dep.code)
        for region in region_list:
            if not by_region.get(region.code):
                errors.append(f"region {region.code} has no département")
            elif region.departements and sorted(region.departements) != sorted(by_region[region.code]):
                errors.append(
                    f"region {region.code} lists départements that disagree with the département file"
                )

        operators: dict[tuple[OrganisationKind, str], Organisation] = {}
        for org in org_list:
            if org.region_code not in region_codes:
                errors.append(f"organisation {org.org_id} points to unknown region {org.region_code}")
            if org.kind in CEP_OPERATOR_KINDS:
                expected_id = f"{ORG_ID_PREFIX[org.kind]}-r{org.region_code}"
                if org.org_id != expected_id:
                    errors.append(
                        f"organisation {org.org_id} of kind {org.kind} should be named {expected_id}"
                    )
                key = (org.kind, org.region_code)
                if key in operators:
                    errors.append(f"region {org.region_code} has two {org.kind} operators")
                operators[key] = org
        for code in sorted(region_codes):
            for kind in sorted(CEP_OPERATOR_KINDS):
                if (kind, code) not in operators:
                    what = "regional operator" if kind == OrganisationKind.REGIONAL_CEP else "contact"
                    errors.append(f"region {code} has no {kind} {what}")

        if errors:
            raise ReferenceDataError("invalid reference data: " + "; ".join(errors))

        self._version = reference_version
        self._regions = {
            r.code: r.model_copy(update={"departements": list(by_region[r.code])}) for r in region_list
        }
        self._departements = {d.code: d for d in dep_list}
        self._organisations = {o.org_id: o for o in org_list}
        self._operators = operators

    @classmethod
    def from_documents(
        cls, regions: Mapping[str, Any], departements: Mapping[str, Any], organisations: Mapping[str, Any]
    ) -> ReferenceData:
        """Validate three parsed JSON documents; they must carry the same `version`."""
        try:
            regions_file = _RegionsFile.model_validate(regions)
            deps_file = _DepartementsFile.model_validate(departements)
            orgs_file = _OrganisationsFile.model_validate(organisations)
        except ValidationError as exc:
            raise ReferenceDataError(f"invalid reference data: {exc}") from exc
        versions = {regions_file.version, deps_file.version, orgs_file.version}
        if len(versions) != 1:
            raise ReferenceDataError(
                f"reference data files disagree on version: {sorted(versions)} (partial update?)"
            )
        return cls(
            reference_version=regions_file.version,
            regions=regions_file.regions,
            departements=deps_file.departements,
            organisations=orgs_file.organisations,
        )

    @property
    def reference_version(self) -> str:
        return self._version

    @property
    def regions(self) -> dict[str, Region]:
        """Regions by INSEE code (a copy: the cached instance is shared)."""
        return dict(self._regions)

    @property
    def departements(self) -> dict[str, Departement]:
        """Départements by INSEE code (a copy)."""
        return dict(self._departements)

    def region(self, code: str) -> Region:
        try:
            return self._regions[code]
        except KeyError:
            raise ReferenceDataError(f"unknown region code {code!r}") from None

    def departement(self, code: str) -> Departement:
        try:
            return self._departements[code]
        except KeyError:
            raise ReferenceDataError(f"unknown département code {code!r}") from None

    def organisations(self) -> list[Organisation]:
        """Every organisation, in a stable order (by id)."""
        return [self._organisations[org_id] for org_id in sorted(self._organisations)]

    def organisation(self, org_id: str) -> Organisation:
        try:
            return self._organisations[org_id]
        except KeyError:
            raise ReferenceDataError(f"unknown organisation id {org_id!r}") from None

    def operator_for(self, kind: OrganisationKind | str, region_code: str) -> Organisation:
        """The operator (contact point) of `kind` serving `region_code`."""
        self.region(region_code)
        try:
            return self._operators[(OrganisationKind(kind), region_code)]
        except (KeyError, ValueError):
            raise ReferenceDataError(f"no {kind} operator in region {region_code}") from None

    def check_location(self, region_code: str, departement_code: str) -> Departement:
        """Raise `ReferenceDataError` unless the département exists and lies in the region."""
        region = self.region(region_code)
        dep = self.departement(departement_code)
        if dep.region_code != region.code:
            owner = self._regions[dep.region_code]
            raise ReferenceDataError(
                f"département {dep.code} ({dep.name}) is in region {owner.code} ({owner.name}), "
                f"not in region {region.code} ({region.name})"
            )
        return dep


def parse_json(name: str, text: str) -> dict[str, Any]:
    """A reference JSON document: duplicate keys refused (json.loads would silently keep the last, which
    in reference data hides an error), an object at the top, errors naming `name`."""
    try:
        document = loads_strict(text)
    except DuplicateKeys as exc:
        raise ReferenceDataError(f"{name}: duplicate JSON keys: {', '.join(sorted(exc.keys))}") from None
    except MalformedJson as exc:
        raise ReferenceDataError(f"{name}: {exc}") from None
    if not isinstance(document, dict):
        raise ReferenceDataError(f"{name}: expected a JSON object")
    return document


def load_reference_from(directory: Path | str) -> ReferenceData:
    """Load and validate the data files of `directory` (uncached: for tests and tools)."""
    base = Path(directory)
    texts = [(base / name).read_text(encoding="utf-8") for name in _DATA_FILES]
    return ReferenceData.from_documents(*(parse_json(n, t) for n, t in zip(_DATA_FILES, texts, strict=True)))


@functools.cache
def load_reference() -> ReferenceData:
    """The packaged reference data, validated once per process."""
    data = resources.files("cepbus.reference").joinpath("data")
    texts = [data.joinpath(name).read_text(encoding="utf-8") for name in _DATA_FILES]
    return ReferenceData.from_documents(*(parse_json(n, t) for n, t in zip(_DATA_FILES, texts, strict=True)))
