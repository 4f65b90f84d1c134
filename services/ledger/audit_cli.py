"""`cep-bus audit report`: France compétences' indicators, from the ledger's database or, for an auditor
who trusts nobody, from a verified export bundle. Both run the same pure code
(`cepbus.auditlog.report.build_report`) over the same leaf records; the bundle path and the rendering
are the auditor's toolkit's (`cepbus.auditlog.cli`, also `cep-bus-audit`), which needs no service."""

from __future__ import annotations

import base64
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cepbus.auditlog.cli import (
    BundleKey,
    ReportFormat,
    TrustFile,
    check_output,
    emit,
    report_from_bundle_file,
)
from services.ledger.cli import DatabaseUrl

if TYPE_CHECKING:
    from cepbus.auditlog.report import KnownOperator, KnownSite, LocalPeriod

audit_app = typer.Typer(
    help="The audit report, from the ledger or from an export bundle.", no_args_is_help=True
)


def ledger_report(
    database_url: str,
    *,
    region: str | None,
    from_ms: int | None,
    to_ms: int | None,
    period: LocalPeriod | None = None,
    operators: Sequence[KnownOperator] | None = None,
    sites: Sequence[KnownSite] | None = None,
) -> dict[str, Any]:
    """The report over every entry of the ledger's database, with the tree size and root it read."""
    from cepbus.auditlog.report import build_report
    from cepbus.progress import track
    from services.ledger.sealed_facts import LedgerSealedFacts
    from services.ledger.store import SqlLedgerStore

    with SqlLedgerStore(database_url) as store:
        entries = list(track(store.entries(), "reading ledger entries", store.size()))
        size = len(entries)
        root = store.root(size)
        # the refusals by reason and recipient kind: opened here, where the persons' keys are
        report = build_report((e.record for e in entries), region=region, from_ms=from_ms, to_ms=to_ms,
                              period=period, operators=operators, sites=sites,
                              sealed=LedgerSealedFacts(store, entries))  # fmt: skip
    return {
        "source": {"kind": "ledger", "tree_size": size, "root_b64": base64.b64encode(root).decode()},
        **report,
    }


@audit_app.command("report")
def report(
    region: Annotated[str | None, typer.Option("--region", help="Region code (INSEE), e.g. 84")] = None,
    from_date: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (from local midnight in each region)")
    ] = None,
    to_date: Annotated[
        str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive, to local midnight)")
    ] = None,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", help="json, csv, html or pdf (the document)")
    ] = ReportFormat.JSON,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write to this file (pdf: required when stdout is a terminal)"),
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Compute from this export bundle (verified first)")
    ] = None,
    key: BundleKey = None,
    trust: TrustFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Intakes, notices and their delay, choices, referrals, acceptance, breaches, the CEP's appointment
    delay, reception sites, silent operators: from the ledger alone, or from a bundle verified against a
    pinned key (--key or --trust; exit 2 without one, 1 if it does not verify). Days are cut at local
    midnight in each region's time zone. --format html|pdf gives the audit document (cover: origin,
    checkpoint, verification)."""
    command = "cep-bus audit report"
    check_output(output_format, out, command)
    if bundle is not None:
        result = report_from_bundle_file(bundle, key=key, trust=trust, region=region, from_date=from_date,
                                         to_date=to_date, command=command)  # fmt: skip
        emit(result, output_format, out, command)
        return
    if key is not None or trust is not None:
        print(f"{command}: --key and --trust go with --bundle", file=sys.stderr)
        raise typer.Exit(2)
    from cepbus.auditlog.context import reference_operators, reference_period, reference_sites
    from services.ledger.attestation import ledger_attestation
    from services.ledger.settings import LedgerSettings

    try:
        period = reference_period(from_date, to_date)
    except ValueError as exc:
        print(f"{command}: --from/--to: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    url = database_url or LedgerSettings().database_url
    result = ledger_report(url, region=region, from_ms=None, to_ms=None, period=period,
                           operators=reference_operators(), sites=reference_sites())  # fmt: skip
    result["source"].update(ledger_attestation(url))
    emit(result, output_format, out, command)
