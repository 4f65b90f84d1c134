"""The reference data: the whole country, and a loader that refuses inconsistent data."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cepbus.contract.models import CEP_OPERATOR_KINDS, OrganisationKind
from cepbus.reference import (
    ReferenceData,
    ReferenceDataError,
    load_reference,
    load_reference_from,
)
from tests.support import ROOT

DATA_DIR = ROOT / "cepbus" / "reference" / "data"

METROPOLITAN = {"11", "24", "27", "28", "32", "44", "52", "53", "75", "76", "84", "93", "94"}
OVERSEAS = {"01", "02", "03", "04", "06"}

#: Number of départements per region (INSEE).
DEPARTEMENTS_PER_REGION = {
    "11": 8,
    "24": 6,
    "27": 8,
    "28": 5,
    "32": 5,
    "44": 10,
    "52": 5,
    "53": 4,
    "75": 12,
    "76": 13,
    "84": 12,
    "93": 6,
    "94": 2,
    "01": 1,
    "02": 1,
    "03": 1,
    "04": 1,
    "06": 1,
}


@pytest.fixture(scope="module")
def ref() -> ReferenceData:
    return load_reference()


def _documents() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Fresh copies of the packaged files, to break one thing at a time."""
    return tuple(  # type: ignore[return-value]
        json.loads((DATA_DIR / name).read_text(encoding="utf-8"))
        for name in ("regions.json", "departements.json", "organisations.json")
    )


def test_counts(ref: ReferenceData) -> None:
    assert len(ref.regions) == 18
    assert len(ref.departements) == 101
    assert len(ref.organisations()) == 18 * 5


def test_region_codes_are_the_insee_ones(ref: ReferenceData) -> None:
    assert set(ref.regions) == METROPOLITAN | OVERSEAS
    assert ref.regions["11"].name == "Île-de-France"
    assert ref.regions["04"].name == "La Réunion"


def test_departement_codes_as_insee_writes_them(ref: ReferenceData) -> None:
    expected = {f"{n:02d}" for n in range(1, 96) if n != 20} | {"2A", "2B"}
    expected |= {"971", "972", "973", "974", "976"}
    assert set(ref.departements) == expected
    assert ref.departement("2A").region_code == "94"
    assert ref.departement("976").name == "Mayotte"


def test_every_departement_region_exists_and_lists_it(ref: ReferenceData) -> None:
    for dep in ref.departements.values():
        assert dep.region_code in ref.regions
        assert dep.code in ref.regions[dep.region_code].departements
    assert {code: len(r.departements) for code, r in ref.regions.items()} == DEPARTEMENTS_PER_REGION


def test_opening_dates(ref: ReferenceData) -> None:
    for code, region in ref.regions.items():
        expected = date(2020, 3, 1) if code in {"03", "04"} else date(2020, 1, 1)
        assert region.opened_on == expected, code


def test_populations_are_plausible(ref: ReferenceData) -> None:
    total = sum(r.population for r in ref.regions.values())
    assert 65_000_000 < total < 70_000_000
    assert max(ref.regions.values(), key=lambda r: r.population).code == "11"


def test_reference_version_and_cache(ref: ReferenceData) -> None:
    assert ref.reference_version
    assert load_reference() is ref


@pytest.mark.parametrize("region_code", sorted(METROPOLITAN | OVERSEAS))
def test_each_region_has_its_five_operators(ref: ReferenceData, region_code: str) -> None:
    prefixes = {
        OrganisationKind.REGIONAL_CEP: "cep",
        OrganisationKind.APEC: "apec",
        OrganisationKind.CAP_EMPLOI: "cap-emploi",
        OrganisationKind.FRANCE_TRAVAIL: "france-travail",
        OrganisationKind.MISSION_LOCALE: "mission-locale",
    }
    for kind in CEP_OPERATOR_KINDS:
        org = ref.operator_for(kind, region_code)
        assert org.org_id == f"{prefixes[kind]}-r{region_code}"
        assert org.kind == kind and org.region_code == region_code
        assert ref.organisation(org.org_id) == org
        assert org.phone or org.website
    assert ref.operator_for("regional_cep", region_code).placeholder is True


def test_contacts_are_only_the_published_national_channels(ref: ReferenceData) -> None:
    """No invented numbers or sites: only the real national channels appear."""
    phones = {org.phone for org in ref.organisations()}
    sites = {org.website for org in ref.organisations()}
    assert phones <= {None, "0 809 361 212", "3949"}
    assert sites <= {
        "https://www.apec.fr",
        "https://www.francetravail.fr",
        "https://www.capemploi.info",
        "https://www.unml.info",
        "https://mon-cep.org",
    }
    assert ref.operator_for(OrganisationKind.APEC, "93").phone == "0 809 361 212"
    assert ref.operator_for(OrganisationKind.FRANCE_TRAVAIL, "06").phone == "3949"


def test_check_location_accepts_a_departement_of_its_region(ref: ReferenceData) -> None:
    assert ref.check_location("94", "2B").name == "Haute-Corse"
    assert ref.check_location("03", "973").code == "973"


@pytest.mark.parametrize(
    ("region", "departement", "message"),
    [
        pytest.param("99", "75", "unknown region code '99'", id="unknown-region"),
        pytest.param("11", "20", "unknown département code '20'", id="unknown-departement-20"),
        pytest.param("11", "975", "unknown département code '975'", id="unknown-departement-975"),
        pytest.param("11", "13", "département 13 (Bouches-du-Rhône) is in region 93", id="wrong-region"),
        pytest.param("04", "976", "not in region 04 (La Réunion)", id="wrong-overseas-region"),
    ],
)
def test_check_location_errors(ref: ReferenceData, region: str, departement: str, message: str) -> None:
    with pytest.raises(ReferenceDataError, match=re.escape(message)):
        ref.check_location(region, departement)
    assert issubclass(ReferenceDataError, ValueError)


def test_unknown_lookups_raise(ref: ReferenceData) -> None:
    with pytest.raises(ReferenceDataError, match="unknown organisation id"):
        ref.organisation("cep-r99")
    with pytest.raises(ReferenceDataError, match="unknown region"):
        ref.operator_for(OrganisationKind.APEC, "99")
    with pytest.raises(ReferenceDataError, match="no opco operator in region 11"):
        ref.operator_for(OrganisationKind.OPCO, "11")


def test_packaged_files_validate_from_a_directory() -> None:
    assert load_reference_from(DATA_DIR).reference_version == load_reference().reference_version


def _break_duplicate_region(r: dict, d: dict, o: dict) -> None:
    r["regions"][1]["code"] = r["regions"][0]["code"]


def _break_duplicate_departement(r: dict, d: dict, o: dict) -> None:
    d["departements"][1]["code"] = d["departements"][0]["code"]


def _break_unknown_region(r: dict, d: dict, o: dict) -> None:
    d["departements"][0]["region_code"] = "99"


def _break_missing_regional_operator(r: dict, d: dict, o: dict) -> None:
    o["organisations"] = [x for x in o["organisations"] if x["org_id"] != "cep-r53"]


def _break_missing_specialised_contact(r: dict, d: dict, o: dict) -> None:
    o["organisations"] = [x for x in o["organisations"] if x["org_id"] != "mission-locale-r06"]


def _break_region_count(r: dict, d: dict, o: dict) -> None:
    r["regions"].append({**r["regions"][0], "code": "05", "name": "Nowhere"})


def _break_departement_count(r: dict, d: dict, o: dict) -> None:
    d["departements"] = [x for x in d["departements"] if x["code"] != "90"]


def _break_version(r: dict, d: dict, o: dict) -> None:
    o["version"] = "other"


def _break_opening_date(r: dict, d: dict, o: dict) -> None:
    r["regions"][0]["opened_on"] = "not a date"


def _break_org_id_convention(r: dict, d: dict, o: dict) -> None:
    o["organisations"][0]["org_id"] = "cep-idf"


@pytest.mark.parametrize(
    ("breaker", "message"),
    [
        (_break_duplicate_region, "duplicate region codes"),
        (_break_duplicate_departement, "duplicate département codes"),
        (_break_unknown_region, "points to unknown region 99"),
        (_break_missing_regional_operator, "region 53 has no regional_cep regional operator"),
        (_break_missing_specialised_contact, "region 06 has no mission_locale contact"),
        (_break_region_count, "expected 18 regions, found 19"),
        (_break_departement_count, "expected 101 départements, found 100"),
        (_break_version, "disagree on version"),
        (_break_opening_date, "opened_on"),
        (_break_org_id_convention, "should be named cep-r11"),
    ],
    ids=lambda value: value.__name__.removeprefix("_break_") if callable(value) else None,
)
def test_validation_at_load_catches(breaker: Any, message: str) -> None:
    documents = copy.deepcopy(_documents())
    breaker(*documents)
    with pytest.raises(ReferenceDataError, match=message):
        ReferenceData.from_documents(*documents)


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    for name in ("regions.json", "departements.json", "organisations.json"):
        (tmp_path / name).write_text((DATA_DIR / name).read_text(encoding="utf-8"), encoding="utf-8")
    text = (tmp_path / "regions.json").read_text(encoding="utf-8")
    (tmp_path / "regions.json").write_text(
        text.replace('"version": ', '"version": "x", "version": ', 1), encoding="utf-8"
    )
    with pytest.raises(ReferenceDataError, match=re.escape("regions.json: duplicate JSON keys: version")):
        load_reference_from(tmp_path)


def test_cached_instance_is_not_mutated_through_accessors(ref: ReferenceData) -> None:
    ref.regions.pop("11")
    assert "11" in ref.regions
