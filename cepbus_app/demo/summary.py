"""The demo's summary as a table a person reads (`cep-bus demo` without `--json`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _email_rows(summary: dict[str, Any]) -> list[tuple[str, object]]:
    """The emails the demo's SMTP server received, by kind (none when it did not run the mailer)."""
    emails = summary.get("emails_by_kind")
    if emails is None:
        return [("emails (the demo did not start the mailer)", "-")]
    new = f"{emails.get('new_referral', 0)} / {summary['emails_new_referral_expected']}"
    others = [(f"  {kind}", count) for kind, count in emails.items() if kind != "new_referral"]
    total = ("emails received by the demo's SMTP server", sum(emails.values()))
    return [total, ("  new_referral (one per referral)", new), *others]


def print_summary(summary: dict[str, Any]) -> None:
    out = Console()
    table = Table(title="cep-bus demo: one regulation loop", show_header=False)
    table.add_column("what")
    table.add_column("figure", justify="right")
    rows = [
        ("intakes published", summary["intakes_published"]),
        ("notices due (router decisions)", summary["notices_expected"]),
        ("informed-choice notices issued", summary["notices_issued"]),
        *((f"  naming {kind}", count) for kind, count in summary["notices_by_operator_kind"].items()),
        ("choices recorded", summary["choices_published"]),
        *((f"  {choice}", count) for choice, count in summary["choices"].items()),
        ("referrals to the chosen operator", summary["referrals"]),
        ("  with the profile (consent given)", summary["referrals_with_profile"]),
        ("referrals left unanswered by the demo", summary.get("referrals_left_unanswered", 0)),
        ("  reminders sent by the router", summary.get("referral_reminders", 0)),
        (
            "  expired by the router (after 12 s here, 30 days by default)",
            summary.get("referrals_expired", 0),
        ),
        ("decisions recorded", summary["decisions_recorded"]),
        *((f"  {status}", count) for status, count in summary["decisions"].items()),
        ("démission-reconversion intakes", summary["demission_reconversion"]),
        *((f"service {level} started", count) for level, count in summary["service_levels"].items()),
        ("regulation breaches", summary["breaches"]),
        *((f"  {kind}", count) for kind, count in summary["breaches_by_kind"].items()),
        (
            "ledger entries from this run",
            f"{summary['ledger_entries_from_this_run']} / {summary['ledger_entries_expected']}",
        ),
        ("ledger entries in total", summary["ledger_entries"]),
        (
            "ledger Merkle tree verified",
            "yes" if summary["ledger_verified"] else f"NO: {summary['ledger_verify_reason']}",
        ),
        (
            "ledger entries under a signed checkpoint",
            f"{summary['ledger_checkpoint_covers']} / {summary['ledger_tree_size']}",
        ),
        ("dead letters (cep-bus deadletters list)", summary["dead_letters"]),
        ("verdicts on status updates in the ledger", summary["status_verdicts_in_ledger"]),
        ("referrals completed", summary["referrals_completed"]),
        ("referrals declined", summary["referrals_declined"]),
        ("referrals still open", summary["referrals_open"]),
        ("referrals to local partners (backlog, ping-pong)", summary["partner_referrals"]),
        ("referral deadline breaches", summary["deadline_breaches"]),
        ("referral regulation alerts", summary["regulation_alerts"]),
        (
            "status updates rejected (forged ones sent)",
            f"{summary['rejected_updates']} ({summary['forged_updates_sent']})",
        ),
        *_email_rows(summary),
        ("publish -> ledger (s)", summary["publish_to_ledger_s"]),
        ("elapsed (s)", summary["elapsed_s"]),
    ]
    for what, figure in rows:
        table.add_row(what, str(figure))
    out.print(table)
    verdict = (
        "loop completed"
        if summary["loop_completed"]
        else f"INCOMPLETE: {summary['missing_entries']} entries missing"
    )
    for name, code in summary.get("services_died", {}).items():
        restarts = summary.get("services_restarted", {}).get(name, 0)
        out.print(f"[red]{name} died during the demo[/red] (exit code {code}); restarted {restarts} times")
    if summary.get("supervisor_gave_up"):
        out.print(f"[red]{summary['supervisor_gave_up']}[/red]")
    out.print(f"{verdict}; started here: {', '.join(summary['started']) or 'nothing (all were running)'}")
    out.print(
        "[bold]development mode[/bold]: example directory, derivable partner keys, development event-id keys "
        "and read-side tokens; CEPBUS_ENV=production refuses them all (docs/threat-model.md)"
    )
