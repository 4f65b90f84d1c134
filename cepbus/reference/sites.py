"""The registry of reception sites ("sites d'accueil"): where an operator receives people.

An intake names its site by `reception_site_id`, an id of this registry, so that the ledger can keep
the site as a regulation fact (an id of a public place says nothing of the person, unlike the free
`reception_site` text, which stays sealed) and the audit report can count sites in use per département
against the sites each operator declared (the seed's "exigence de proximité": 600+ sites in 2020).

The packaged registry (`data/reception_sites.json`) holds placeholders, six per département for each
regional CEP operator, to be replaced by the operators' published lists; it is validated against the
reference data at load: a site of an unknown operator, or in a département outside its operator's
region, fails loudly. Pure: no I/O beyond reading the package's own file.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cepbus.contract.models import DEPARTEMENT_CODE, ORG_ID, RECEPTION_SITE_ID
from cepbus.reference import ReferenceData, ReferenceDataError, duplicates, load_reference, parse_json

SITES_FILE = "reception_sites.json"


class ReceptionSite(BaseModel):
    """One reception site of one operator, in one département."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_id: str = Field(pattern=RECEPTION_SITE_ID)
    operator_id: str = Field(pattern=ORG_ID)
    departement_code: str = Field(pattern=DEPARTEMENT_CODE)
    name: str = Field(min_length=1, max_length=200)
    placeholder: bool = False  # true while the name is not the operator's published one


class _SitesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    source: str | None = None
    sites: list[ReceptionSite]


class SiteRegistry:
    """The validated, read-only registry of reception sites."""

    def __init__(self, version: str, sites: Iterable[ReceptionSite], reference: ReferenceData) -> None:
        site_list = list(sites)
        errors: list[str] = []
        if dup := duplicates(s.site_id for s in site_list):
            errors.append(f"duplicate site ids: {', '.join(dup)}")
        organisations = {o.org_id: o for o in reference.organisations()}
        departements = reference.departements
        for site in site_list:
            operator = organisations.get(site.operator_id)
            dep = departements.get(site.departement_code)
            if operator is None:
                errors.append(f"site {site.site_id}: unknown operator {site.operator_id}")
            elif dep is None:
                errors.append(f"site {site.site_id}: unknown département {site.departement_code}")
            elif dep.region_code != operator.region_code:
                errors.append(
                    f"site {site.site_id}: département {dep.code} is in region {dep.region_code}, "
                    f"not in {operator.org_id}'s region {operator.region_code}"
                )
        if errors:
            raise ReferenceDataError("invalid reception sites: " + "; ".join(errors))
        self.version = version
        self._sites = {s.site_id: s for s in site_list}
        self._region_of = {code: dep.region_code for code, dep in departements.items()}

    @classmethod
    def from_document(cls, document: dict[str, Any], reference: ReferenceData) -> SiteRegistry:
        try:
            parsed = _SitesFile.model_validate(document)
        except ValidationError as exc:
            raise ReferenceDataError(f"invalid reception sites: {exc}") from exc
        return cls(parsed.version, parsed.sites, reference)

    def __contains__(self, site_id: object) -> bool:
        return site_id in self._sites

    def __len__(self) -> int:
        return len(self._sites)

    def site(self, site_id: str) -> ReceptionSite:
        try:
            return self._sites[site_id]
        except KeyError:
            raise ReferenceDataError(f"unknown reception site {site_id!r}") from None

    def sites(self) -> list[ReceptionSite]:
        """Every site, by id."""
        return [self._sites[site_id] for site_id in sorted(self._sites)]

    def of_operator(self, operator_id: str) -> list[ReceptionSite]:
        return [s for s in self.sites() if s.operator_id == operator_id]

    def region_code(self, site: ReceptionSite) -> str:
        """The region the site's département lies in."""
        return self._region_of[site.departement_code]

    def check(self, site_id: str, operator_id: str, region_code: str) -> ReceptionSite:
        """Raise `ReferenceDataError` unless the site is registered, is the operator's and lies in the
        intake's region (a person may be received in a neighbouring département of the region)."""
        site = self.site(site_id)
        if site.operator_id != operator_id:
            raise ReferenceDataError(f"reception site {site_id} is {site.operator_id}'s, not {operator_id}'s")
        if self.region_code(site) != region_code:
            raise ReferenceDataError(
                f"reception site {site_id} is in département {site.departement_code}, outside region "
                f"{region_code}"
            )
        return site


def load_sites_from(path: Path | str, reference: ReferenceData | None = None) -> SiteRegistry:
    """Load and validate a sites file (uncached: for tests and tools)."""
    text = Path(path).read_text(encoding="utf-8")
    return SiteRegistry.from_document(parse_json(Path(path).name, text), reference or load_reference())


@functools.cache
def load_sites() -> SiteRegistry:
    """The packaged registry, validated once per process against the packaged reference data."""
    text = resources.files("cepbus.reference").joinpath("data", SITES_FILE).read_text(encoding="utf-8")
    return SiteRegistry.from_document(parse_json(SITES_FILE, text), load_reference())


__all__ = ["SITES_FILE", "ReceptionSite", "SiteRegistry", "load_sites", "load_sites_from"]
