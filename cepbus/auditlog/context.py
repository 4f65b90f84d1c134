"""What `cep-bus audit report` needs besides the leaves: the reference's time zones (a period of days is cut
at local midnight in each region) and operators (who must report, for the silence check), and what the
figures were computed from and how that was verified, for the document's cover.

Kept out of `cepbus.auditlog.report`, which stays pure (leaves and arguments in, a dict out); everything
here reads files: the reference data, the ledger's database, its signing key.
"""

from __future__ import annotations

import base64
from typing import Any

from cepbus.auditlog.report import KnownOperator, KnownSite, LocalPeriod, local_period
from cepbus.contract.models import CEP_OPERATOR_KINDS
from cepbus.reference import ReferenceData, load_reference
from cepbus.reference.sites import SiteRegistry, load_sites


def region_zones(reference: ReferenceData | None = None) -> dict[str, str]:
    """Region code -> IANA zone, from the reference (`Region.timezone`)."""
    regions = (reference or load_reference()).regions
    return {code: region.timezone for code, region in sorted(regions.items())}


def reference_period(
    from_date: str | None, to_date: str | None, reference: ReferenceData | None = None
) -> LocalPeriod | None:
    """The days `--from`..`--to` cut at local midnight per region, or None when neither is given;
    ValueError naming the bad date or the reversed period."""
    if from_date is None and to_date is None:
        return None
    for text in (from_date, to_date):
        if text is not None:
            try:
                local_period(text, None, {})
            except ValueError:
                raise ValueError(f"{text!r} is not a date YYYY-MM-DD") from None
    return local_period(from_date, to_date, region_zones(reference))


def reference_operators(reference: ReferenceData | None = None) -> list[KnownOperator]:
    """The operators the law expects reports from: each region's five CEP operators (the regional one,
    Apec, Cap emploi, France Travail, the Mission locale contact)."""
    return [
        KnownOperator(org.org_id, org.kind.value, org.region_code)
        for org in (reference or load_reference()).organisations()
        if org.kind in CEP_OPERATOR_KINDS
    ]


def reference_sites(registry: SiteRegistry | None = None) -> list[KnownSite]:
    """The registered reception sites (`cepbus.reference.sites`), each with its département's region."""
    sites = registry or load_sites()
    return [
        KnownSite(site.site_id, site.operator_id, site.departement_code, sites.region_code(site))
        for site in sites.sites()
    ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def bundle_attestation(document: Any, source: dict[str, Any]) -> dict[str, Any]:
    """The verified bundle's checkpoint (its signed note) and what its verification checked: only ever
    called once `verify_bundle` passed, so `ok` is always true here."""
    return {
        "checkpoint": {
            "origin": source["origin"],
            "tree_size": source["tree_size"],
            "root_b64": source["root_b64"],
            "signed_at_ms": source.get("checkpoint_signed_at_ms"),  # inside the signature, or None
            "note": document["checkpoint"],
        },
        "verification": {
            "method": "bundle",
            "ok": True,
            "entries_checked": source["tree_size"],
            "root_b64": source["root_b64"],
            "first_bad_index": None,
            "reason": None,
            "signatures_checked_with": source["verified_by"],
            "key_problem": None,
        },
    }
