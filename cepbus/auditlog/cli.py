"""`cep-bus-audit`: the auditor's toolkit, installed with `pip install 'cep-bus[audit]'` alone (no stream
runtime, no service): verify an export bundle offline against a pinned key, and compute and render the
audit report from a verified bundle (JSON, CSV, HTML, PDF/A).

    cep-bus-audit verify BUNDLE --key VKEY            exit 0 verified, 1 it does not, 2 no key or no file
    cep-bus-audit verify BUNDLE --key VKEY --not-older-than 24h    and its checkpoint signed within 24 h
    cep-bus-audit report BUNDLE --key VKEY --format pdf --out audit.pdf

A verifier prints the checkpoint's size and the time the ledger signed it (inside the signature), and
whether the bundle's period is signed (``cep-bus-ledger-bundle/2``) or not (``/1``).

`cep-bus audit report` and `cep-bus ledger verify --bundle` (the bus's own command, which can also read
the ledger's database) run the same functions.
"""

from __future__ import annotations

import base64
import os
import sys
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from cepbus.auditlog.note import Verifier
    from cepbus.auditlog.report import KnownOperator, KnownSite, LocalPeriod

app = typer.Typer(
    help="The auditor's toolkit: verify an export bundle, report from it.", no_args_is_help=True
)

BundleKey = Annotated[
    str | None,
    typer.Option("--key", help="The published verifier key (name+hash+base64) to pin"),
]
TrustFile = Annotated[
    Path | None,
    typer.Option("--trust", help="A file of trusted verifier keys, one a line ('#' comments)"),
]
Region = Annotated[str | None, typer.Option("--region", help="Region code (INSEE), e.g. 84")]
FromDate = Annotated[
    str | None, typer.Option("--from", help="First day, YYYY-MM-DD (from local midnight in each region)")
]
ToDate = Annotated[
    str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive, to local midnight)")
]
Out = Annotated[
    Path | None, typer.Option("--out", help="Write to this file (pdf: required when stdout is a terminal)")
]
NotOlderThan = Annotated[
    str | None,
    typer.Option(
        "--not-older-than",
        help="Refuse a checkpoint the ledger signed longer ago than this (e.g. 24h, 7d; s, m, h or d)",
    ),
]


#: The directory authority's key, as every deployment pins it: an auditor pins it the same way.
AUTHORITY_ENV = "CEPBUS_DIRECTORY_AUTHORITY_KEY"


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"  # the document, one self-contained page
    PDF = "pdf"  # the document laid out (PDF/A-3b, the JSON attached): binary, so --out or a redirect


Format = Annotated[ReportFormat, typer.Option("--format", help="json, csv, html or pdf (the document)")]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def verify_bundle_file(
    bundle: Path,
    key: str | None,
    trust: Path | None,
    command: str,
    not_older_than: str | None = None,
    now_ms: int | None = None,
) -> None:
    """Offline, against a pinned key (`key` and/or the keys of the `trust` file; never the bundle's own):
    return when the bundle verifies (after printing what, with the checkpoint's size and signed time and
    whether its period is signed), else exit 1 naming what failed (a checkpoint older than
    `not_older_than` included), or 2 without a usable pinned key, bundle file or duration. Every failure
    is one line on stderr."""
    from cepbus.auditlog.bundle import BundleError, BundleUsageError, read_bundle, trusted_keys, verify_bundle
    from cepbus.auditlog.freshness import parse_duration, signed_time_line, staleness

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        limit_s = None if not_older_than is None else parse_duration(not_older_than)
    except ValueError as exc:
        print(f"{command}: --not-older-than: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    authority = directory_authority(command)
    try:
        pinned = trusted_keys(key, trust)
        verified = verify_bundle(read_bundle(bundle), pinned, directory_authority=authority)
    except BundleError as exc:
        kind = command if isinstance(exc, BundleUsageError) else "BUNDLE VERIFICATION FAILED"
        print(f"{kind}: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    if limit_s is not None and not_older_than is not None:
        stale = staleness(verified.signed_at_ms, limit_s, not_older_than, now_ms)
        if stale is not None:
            print(f"STALE CHECKPOINT: {stale}", file=sys.stderr)
            raise typer.Exit(1)
    print(f"bundle verified: {verified.size} entries, origin {verified.origin}, root {_b64(verified.root)}, "
          f"signed by the pinned key {verified.verified_by}")  # fmt: skip
    print(signed_time_line(verified.size, verified.signed_at_ms, now_ms))
    print(_period_line(verified))
    print(_authors_line(verified))


def directory_authority(command: str) -> Any:
    """The directory authority key the auditor pins (CEPBUS_DIRECTORY_AUTHORITY_KEY), with which each
    directory version the log holds is checked too; None when unset; exit 2 when malformed."""
    from cepbus.trust.keys import parse_authority_key

    text = os.environ.get(AUTHORITY_ENV)
    if not text:
        return None
    try:
        return parse_authority_key(text)
    except ValueError as exc:
        print(f"{command}: {AUTHORITY_ENV}: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def _authors_line(verified: Any) -> str:
    """Who said what: how many statements verified against the directory version in force."""
    authors = verified.authors
    serials = ", ".join(map(str, authors.directory_serials)) or "none"
    checked = (
        "each checked against the pinned directory authority"
        if authors.authority_checked
        else f"their signatures not checked: set {AUTHORITY_ENV} to pin the directory authority"
    )
    return (
        f"authors: {authors.signed} statements signed by their producer's key in the directory in force,"
        f" {authors.digest_only} with a sealed signer (digest only), {authors.unsigned} without a statement;"
        f" directory versions in the log: {serials} ({checked})"
    )


def _period_line(verified: Any) -> str:
    """What the verifier says of the bundle's period: signed by the ledger, or outside any signature."""
    days, (start, end) = verified.days, verified.period
    what = (
        f"days {days[0] or '...'} to {days[1] or '...'}"
        if days is not None
        else "every entry"
        if start is None and end is None
        else f"instants [{start}, {end})"
    )
    if verified.period_signed:
        return f"period: {what}, signed by the ledger with the checkpoint"
    return (
        f"period: {what}, NOT covered by a signature (cep-bus-ledger-bundle/1): a report from this bundle "
        "does not use it (pass --from/--to)"
    )


def check_output(output_format: ReportFormat, out: Path | None, command: str) -> None:
    """Refuse, before any work, an --out that cannot be written or a PDF bound for a terminal."""
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        print(f"{command}: --out {str(out)!r} is not a file in an existing directory", file=sys.stderr)
        raise typer.Exit(2)
    if output_format is ReportFormat.PDF and out is None and sys.stdout.isatty():
        print(f"{command}: --format pdf is binary: pass --out FILE (or redirect stdout to a file)",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(2)


def report_from_bundle_file(
    bundle: Path,
    *,
    key: str | None,
    trust: Path | None,
    region: str | None,
    from_date: str | None,
    to_date: str | None,
    command: str,
) -> dict[str, Any]:
    """The report from a bundle file, only once it verifies against a pinned key (exit 1 if it does not,
    2 without a key); the result names what was verified, for the document's cover."""
    from cepbus.auditlog.bundle import (
        BundleError,
        BundleUsageError,
        PeriodNotSigned,
        read_bundle,
        trusted_keys,
    )
    from cepbus.auditlog.context import (
        bundle_attestation,
        reference_operators,
        reference_period,
        reference_sites,
    )

    try:
        period = reference_period(from_date, to_date)
    except ValueError as exc:
        print(f"{command}: --from/--to: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    try:
        pinned = trusted_keys(key, trust)
        document = read_bundle(bundle)
        own_period = from_date is None and to_date is None
        result = bundle_report(document, pinned_key=pinned, region=region, from_ms=None, to_ms=None,
                               use_bundle_period=own_period, period=period,
                               operators=reference_operators(), sites=reference_sites())  # fmt: skip
    except PeriodNotSigned as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except BundleError as exc:
        kind = command if isinstance(exc, BundleUsageError) else "BUNDLE VERIFICATION FAILED"
        print(f"{kind}: {exc}; no report from an unverified bundle", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    result["source"].update(bundle_attestation(document, result["source"]))
    return result


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
    days, else its instants; only a period the ledger signed (``/2``): a ``/1`` bundle's bounded period is
    anyone's edit, so PeriodNotSigned (an unbounded one covers the whole signed log, and says so)."""
    from cepbus.auditlog.bundle import FORMAT, PeriodNotSigned, verify_bundle
    from cepbus.auditlog.report import build_report

    verified = verify_bundle(document, pinned_key, directory_authority=directory_authority("audit"))
    bounded = verified.days is not None or verified.period != (None, None)
    if use_bundle_period and bounded and not verified.period_signed:
        raise PeriodNotSigned(
            "the bundle verifies, but its period is outside any signature (cep-bus-ledger-bundle/1), so "
            f"the report does not use it: pass --from/--to, or ask for a new export ({FORMAT} signs it)"
        )
    if use_bundle_period and verified.days is not None:  # an export of whole days: cut per region
        from cepbus.auditlog.context import reference_period

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
        "checkpoint_signed_at_ms": verified.signed_at_ms,  # inside the signature (None: not carried)
        "period_signed": verified.period_signed,
    }
    return {"source": source, **report}


def emit(result: dict[str, Any], output_format: ReportFormat, out: Path | None, command: str) -> None:
    """Render the report in its format and write it to `out` or stdout; a file that cannot be written is
    one line and exit 2, a PDF that could not be PDF/A is said on stderr (it is still written)."""
    from cepbus.auditlog.report import report_csv, report_json

    payload: str | bytes
    if output_format is ReportFormat.CSV:
        payload = report_csv(result)
    elif output_format is ReportFormat.JSON:
        payload = report_json(result)
    else:
        from cepbus.auditlog.document import Labels, render_html, render_pdf

        labels = Labels.from_reference()
        if output_format is ReportFormat.HTML:
            payload = render_html(result, labels)
        else:
            pdf = render_pdf(result, labels)
            if pdf.variant is None:
                print(f"{command}: not PDF/A ({pdf.problem}): a plain PDF", file=sys.stderr)
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
        print(f"{command}: cannot write {str(out)!r}: {exc.strerror or exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    if output_format in (ReportFormat.HTML, ReportFormat.PDF):
        size = len(payload.encode() if isinstance(payload, str) else payload)
        print(f"wrote {out} ({output_format.value}, {size} bytes, tree size {result['source']['tree_size']}, "
              f"root {result['source']['root_b64']})", file=sys.stderr)  # fmt: skip


@app.command("verify")
def verify(bundle: Annotated[Path, typer.Argument(help="The export bundle (JSON)")], key: BundleKey = None,
           trust: TrustFile = None, not_older_than: NotOlderThan = None) -> None:  # fmt: skip
    """Verify an export bundle offline against a pinned key: the checkpoint's signature, the root
    recomputed from every leaf, each entry's content against its leaf, the signed period. Prints the
    checkpoint's size and signed time. Exit 1 if it does not verify (or its checkpoint is older than
    --not-older-than), 2 without a pinned key (--key or --trust; the key inside the bundle is never
    trusted)."""
    verify_bundle_file(bundle, key, trust, "cep-bus-audit verify", not_older_than)


@app.command("report")
def report(
    bundle: Annotated[Path, typer.Argument(help="The export bundle (JSON), verified first")],
    key: BundleKey = None,
    trust: TrustFile = None,
    region: Region = None,
    from_date: FromDate = None,
    to_date: ToDate = None,
    output_format: Format = ReportFormat.JSON,
    out: Out = None,
) -> None:
    """The audit report from a bundle verified against a pinned key: intakes, notices and their delay,
    choices, referrals, acceptance, breaches, the CEP's appointment delay, reception sites, silent
    operators. Days are cut at local midnight in each region. --format html|pdf gives the document."""
    command = "cep-bus-audit report"
    check_output(output_format, out, command)
    result = report_from_bundle_file(bundle, key=key, trust=trust, region=region, from_date=from_date,
                                     to_date=to_date, command=command)  # fmt: skip
    emit(result, output_format, out, command)


def main() -> None:
    app()


__all__ = [
    "BundleKey",
    "NotOlderThan",
    "ReportFormat",
    "TrustFile",
    "app",
    "bundle_report",
    "check_output",
    "emit",
    "main",
    "report_from_bundle_file",
    "verify_bundle_file",
]
