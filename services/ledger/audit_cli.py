"""`cep-bus audit report`: France compétences' indicators, from the ledger's database or, for an auditor
who trusts nobody, from a verified export bundle. Both run the same pure code
(`services.ledger.report.build_report`) over the same leaf records."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.ledger.cli import BundleKey, DatabaseUrl, TrustFile, day_start_ms

if TYPE_CHECKING:
    from services.ledger.note import Verifier

audit_app = typer.Typer(
    help="The audit report, from the ledger or from an export bundle.", no_args_is_help=True
)


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def ledger_report(
    database_url: str, *, region: str | None, from_ms: int | None, to_ms: int | None
) -> dict[str, Any]:
    """The report over every entry of the ledger's database, with the tree size and root it read."""
    from services.ledger.report import build_report
    from services.ledger.store import open_store

    with open_store(database_url) as store:
        entries = list(store.entries())
        size = len(entries)
        root = store.root(size)
    report = build_report((e.record for e in entries), region=region, from_ms=from_ms, to_ms=to_ms)
    return {
        "source": {"kind": "ledger", "tree_size": size, "root_b64": base64.b64encode(root).decode()},
        **report,
    }


def bundle_report(
    document: Any,
    *,
    pinned_key: str | Verifier | Sequence[str | Verifier],
    region: str | None,
    from_ms: int | None,
    to_ms: int | None,
    use_bundle_period: bool,
) -> dict[str, Any]:
    """The report over a bundle's leaves, only once the bundle verifies against a pinned key (raises
    BundleError otherwise; BundleUsageError when no key is pinned). Without dates of its own the report
    covers the bundle's period."""
    from services.ledger.bundle import verify_bundle
    from services.ledger.report import build_report

    verified = verify_bundle(document, pinned_key)
    if use_bundle_period:
        from_ms, to_ms = verified.period
    report = build_report(verified.records, region=region, from_ms=from_ms, to_ms=to_ms)
    source = {
        "kind": "bundle",
        "tree_size": verified.size,
        "root_b64": base64.b64encode(verified.root).decode(),
        "origin": verified.origin,
        "key_pinned": True,  # always: a bundle is only ever verified against a pinned key
        "verified_by": str(verified.verified_by),
    }
    return {"source": source, **report}


@audit_app.command("report")
def report(
    region: Annotated[str | None, typer.Option("--region", help="Region code (INSEE), e.g. 84")] = None,
    from_date: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (UTC)")] = None,
    to_date: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (UTC, inclusive)")] = None,
    output_format: Annotated[ReportFormat, typer.Option("--format", help="json or csv")] = ReportFormat.JSON,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Compute from this export bundle (verified first)")
    ] = None,
    key: BundleKey = None,
    trust: TrustFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Intakes, notices and their delay, choices, referrals, acceptance, breaches: from the ledger alone,
    or from a bundle verified against a pinned key (--key or --trust; exit 2 without one, 1 if it does
    not verify)."""
    from services.ledger.bundle import BundleError, BundleUsageError, read_bundle, trusted_keys
    from services.ledger.report import report_csv

    from_ms, to_ms = day_start_ms(from_date), day_start_ms(to_date, end=True)
    if bundle is not None:
        try:
            pinned = trusted_keys(key, trust)
            document = read_bundle(bundle)
            own_period = from_date is None and to_date is None
            result = bundle_report(document, pinned_key=pinned, region=region, from_ms=from_ms, to_ms=to_ms,
                                   use_bundle_period=own_period)  # fmt: skip
        except BundleError as exc:
            usage = isinstance(exc, BundleUsageError)
            kind = "cep-bus audit report" if usage else "BUNDLE VERIFICATION FAILED"
            print(f"{kind}: {exc}; no report from an unverified bundle", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
    elif key is not None or trust is not None:
        print("cep-bus audit report: --key and --trust go with --bundle", file=sys.stderr)
        raise typer.Exit(2)
    else:
        from services.ledger.settings import LedgerSettings

        url = database_url or LedgerSettings().database_url
        result = ledger_report(url, region=region, from_ms=from_ms, to_ms=to_ms)
    if output_format is ReportFormat.CSV:
        print(report_csv(result), end="")
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2))
