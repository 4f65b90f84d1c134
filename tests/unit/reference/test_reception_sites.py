"""The reception sites registry: the packaged placeholders cover every département with its regional
operator's sites, the loader refuses a registry that contradicts the reference data, and an intake's
site is checked against it (operator and region) by the publishing SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cepbus.contract.models import OrganisationKind
from cepbus.reference import ReferenceDataError, load_reference
from cepbus.reference.checks import reference_problems
from cepbus.reference.sites import SiteRegistry, load_sites, load_sites_from
from tests.support.factories import intake


def test_the_packaged_registry_has_sites_for_every_departement_at_its_regional_operator() -> None:
    registry, reference = load_sites(), load_reference()
    assert len(registry) >= 600  # the seed: "plus de 600 sites d'accueil"
    for dep in reference.departements.values():
        operator = reference.operator_for(OrganisationKind.REGIONAL_CEP, dep.region_code)
        here = [s for s in registry.of_operator(operator.org_id) if s.departement_code == dep.code]
        assert here, f"no site of {operator.org_id} in {dep.code}"
    assert all(site.placeholder for site in registry.sites())  # to be replaced by the published lists


def document(*sites: dict[str, Any]) -> dict[str, Any]:
    return {"version": "test", "sites": list(sites)}


def site(site_id: str, operator_id: str = "cep-r84", departement_code: str = "69") -> dict[str, Any]:
    return {"site_id": site_id, "operator_id": operator_id, "departement_code": departement_code, "name": "x"}


@pytest.mark.parametrize(
    ("sites", "expected"),
    [
        pytest.param([site("a-1"), site("a-1")], "duplicate site ids: a-1", id="duplicate"),
        pytest.param([site("a-1", operator_id="cep-r99")], "unknown operator cep-r99", id="unknown-operator"),
        pytest.param(
            [site("a-1", departement_code="75")], "département 75 is in region 11", id="other-region"
        ),
        pytest.param([{**site("a-1"), "site_id": "A 1"}], "site_id", id="bad-id"),
        pytest.param([{**site("a-1"), "extra": 1}], "extra", id="unknown-field"),
    ],
)
def test_a_registry_that_contradicts_the_reference_is_refused(
    sites: list[dict[str, Any]], expected: str
) -> None:
    with pytest.raises(ReferenceDataError, match=expected):
        SiteRegistry.from_document(document(*sites), load_reference())


def test_a_registry_file_loads_and_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reception_sites.json"
    path.write_text(json.dumps(document(site("lyon-1"))))
    assert load_sites_from(path).site("lyon-1").departement_code == "69"
    path.write_text('{"version": "t", "version": "u", "sites": []}')
    with pytest.raises(ReferenceDataError, match="duplicate JSON keys"):
        load_sites_from(path)


def test_an_intakes_site_must_be_its_operators_and_in_its_region() -> None:
    [lyon] = [s for s in load_sites().of_operator("cep-r84") if s.departement_code == "69"][:1]
    good = intake(region="84", departement="38").model_copy(update={"reception_site_id": lyon.site_id})
    assert reference_problems(good, load_reference()) == []  # a person of the Isère received at Lyon
    unknown = good.model_copy(update={"reception_site_id": "cep-r84-69-99"})
    assert reference_problems(unknown, load_reference()) == [
        "reception_site_id: unknown reception site 'cep-r84-69-99'"
    ]
    [paris] = load_sites().of_operator("cep-r11")[:1]
    foreign = good.model_copy(update={"reception_site_id": paris.site_id})
    [problem] = reference_problems(foreign, load_reference())
    assert problem.startswith(
        f"reception_site_id: reception site {paris.site_id} is cep-r11's, not cep-r84's"
    )
    assert reference_problems(good.model_copy(update={"reception_site_id": None}), load_reference()) == []
