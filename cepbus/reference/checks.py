"""Reference-data checks an event must pass before the Publisher sends it.

pydantic checks formats (a region code is two digits); these check meaning against the map of the
country: the region exists and the département lies in it, and a named reception site is one the
operator declared in that region (`cepbus.reference.sites`). Refusing at the source gives the
operator's information system a clear error at once, instead of a dead letter it never reads.
The router applies the same checks (rule R-REJECT-LOCATION) to whatever reaches the bus anyway.
"""

from __future__ import annotations

from cepbus.contract.models import Event
from cepbus.reference import ReferenceData, ReferenceDataError


def reference_problems(event: Event, reference: ReferenceData) -> list[str]:
    """What in `event` contradicts the reference data (empty: nothing)."""
    region_code = getattr(event, "region_code", None)
    departement_code = getattr(event, "departement_code", None)
    if not isinstance(region_code, str):
        return []
    try:
        reference.region(region_code)
    except ReferenceDataError as exc:
        return [f"region_code: {exc}"]
    if isinstance(departement_code, str):
        try:
            reference.check_location(region_code, departement_code)
        except ReferenceDataError as exc:
            return [f"departement_code: {exc}"]
    site_id = getattr(event, "reception_site_id", None)
    if isinstance(site_id, str):
        from cepbus.reference.sites import load_sites

        try:
            load_sites().check(site_id, str(getattr(event, "operator_id", "")), region_code)
        except ReferenceDataError as exc:
            return [f"reception_site_id: {exc}"]
    return []
