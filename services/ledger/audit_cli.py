"""`cep-bus audit report`: France compétences' indicators, from the ledger's database or, for an auditor
who trusts nobody, from a verified export bundle. Both run the same pure code
(`services.ledger.report.build_report`) over the same leaf records."""

from __future__ import annotations

import base64
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.ledger.cli import BundleKey, DatabaseUrl, TrustFile

if TYPE_CHECKING:
    from services.ledger.note import Verifier
    from services.ledger.report import KnownOperator, KnownSite, LocalPeriod

audit_app = typer.Typer(
    help="The audit report, from the ledger or from an export bundle.", no_args_is_help=True
)


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"  # the document, one self-contained page
    PDF = "pdf"  # the document laid out (PDF/A-3b, the JSON attached): binary, so --out or a redirect


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
    from cepbus.runtime.progress import track
    from services.ledger.report import build_report
    from services.ledger.store import open_store

    with open_store(database_url) as store:
        entries = list(track(store.entries(), "reading ledger entries", store.size()))
        size = len(entries)
        root = store.root(size)
    report = build_report((e.record for e in entries), region=region, from_ms=from_ms, to_ms=to_ms,
                          period=period, operators=operators, sites=sites)  # fmt: skip
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
    period: LocalPeriod | None = None,
    operators: Sequence[KnownOperator] | None = None,
    sites: Sequence[KnownSite] | None = None,
) -> dict[str, Any]:
    """The report over a bundle's leaves, only once the bundle verifies against a pinned key (raises
    BundleError otherwise; BundleUsageError when no key is pinned). Without dates of its own the report
    covers the bundle's period: its days cut at local midnight per region when it is an export of whole
    days, else its instants."""
    from services.ledger.bundle import verify_bundle
    from services.ledger.report import build_report

    verified = verify_bundle(document, pinned_key)
    if use_bundle_period and verified.days is not None:  # an export of whole days: cut per region
        from services.ledger.audit_context import reference_period

        (from_ms, to_ms), period = (None, None), reference_period(*verified.days)
    elif use_bundle_period:
        (from_ms, to_ms), period = verified.period, None
    report = build_report(verified.records, region=region, from_ms=from_ms, to_ms=to_ms, period=period,
                          operators=operators, sites=sites)  # fmt: skip
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
    from services.ledger.audit_context import (
        bundle_attestation,
        ledger_attestation,
        reference_operators,
        reference_period,
        reference_sites,
    )
    from services.ledger.bundle import BundleError, BundleUsageError, read_bundle, trusted_keys

    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        print(f"cep-bus audit report: --out {str(out)!r} is not a file in an existing directory",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(2)
    if output_format is ReportFormat.PDF and out is None and sys.stdout.isatty():
        print("cep-bus audit report: --format pdf is binary: pass --out FILE (or redirect stdout to a file)",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(2)
    try:
        period = reference_period(from_date, to_date)
    except ValueError as exc:
        print(f"cep-bus audit report: --from/--to: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    operators, sites = reference_operators(), reference_sites()
    if bundle is not None:
        try:
            pinned = trusted_keys(key, trust)
            document = read_bundle(bundle)
            own_period = from_date is None and to_date is None
            result = bundle_report(document, pinned_key=pinned, region=region, from_ms=None, to_ms=None,
                                   use_bundle_period=own_period, period=period,
                                   operators=operators, sites=sites)  # fmt: skip
        except BundleError as exc:
            usage = isinstance(exc, BundleUsageError)
            kind = "cep-bus audit report" if usage else "BUNDLE VERIFICATION FAILED"
            print(f"{kind}: {exc}; no report from an unverified bundle", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        result["source"].update(bundle_attestation(document, result["source"]))
    elif key is not None or trust is not None:
        print("cep-bus audit report: --key and --trust go with --bundle", file=sys.stderr)
        raise typer.Exit(2)
    else:
        from services.ledger.settings import LedgerSettings

        url = database_url or LedgerSettings().database_url
        result = ledger_report(url, region=region, from_ms=None, to_ms=None, period=period,
                               operators=operators, sites=sites)  # fmt: skip
        result["source"].update(ledger_attestation(url))
    _emit(result, output_format, out)


def _emit(result: dict[str, Any], output_format: ReportFormat, out: Path | None) -> None:
    """Render the report in its format and write it to `out` or stdout; a file that cannot be written is
    one line and exit 2, a PDF that could not be PDF/A is said on stderr (it is still written)."""
    from services.ledger.report import report_csv, report_json

    payload: str | bytes
    if output_format is ReportFormat.CSV:
        payload = report_csv(result)
    elif output_format is ReportFormat.JSON:
        payload = report_json(result)
    else:
        from services.ledger.report_document import Labels, render_html, render_pdf

        labels = Labels.from_reference()
        if output_format is ReportFormat.HTML:
            payload = render_html(result, labels)
        else:
            pdf = render_pdf(result, labels)
            if pdf.variant is None:
                print(f"cep-bus audit report: not PDF/A ({pdf.problem}): a plain PDF", file=sys.stderr)
            payload = pdf.data
    if out is None:
        if isinstance(payload, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(payload)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(payload)
        return
    try:
        if isinstance(payload, bytes):
            out.write_bytes(payload)
        else:
            out.write_text(payload, encoding="utf-8")
    except OSError as exc:
        print(f"cep-bus audit report: cannot write {str(out)!r}: {exc.strerror or exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    if output_format in (ReportFormat.HTML, ReportFormat.PDF):
        size = len(payload.encode() if isinstance(payload, str) else payload)
        print(f"wrote {out} ({output_format.value}, {size} bytes, tree size {result['source']['tree_size']}, "
              f"root {result['source']['root_b64']})", file=sys.stderr)  # fmt: skip
