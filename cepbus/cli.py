"""The `cep-bus` command line."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cepbus.audit_cli import audit_app
from cepbus.cli_referrals import partner, referral_app
from cepbus.cli_router import rules_evidence
from cepbus.ledger_cli import register as register_ledger_commands

app = typer.Typer(
    help="cep-bus: inter-operator regulation and referrals of the CEP, on Kafka.", no_args_is_help=True
)
ledger_app = typer.Typer(help="The regulation ledger: run the service, or verify the trail.")
rules_app = typer.Typer(help="The regulation rules.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(rules_app, name="rules")
app.add_typer(audit_app, name="audit")
register_ledger_commands(ledger_app)
rules_app.command("evidence")(rules_evidence)
app.add_typer(referral_app, name="referral")  # closed-loop referrals (#4)
app.command()(partner)
from cepbus.k8s import k8s_app  # noqa: E402  (generators of deploy/k8s resources, issue #6)

app.add_typer(k8s_app, name="k8s")
console = Console(stderr=True)


@app.command()
def broker() -> None:
    """Run the embedded Tansu broker on loopback until interrupted."""
    from cepbus.broker import EmbeddedBroker

    embedded = EmbeddedBroker()
    if embedded.already_running():
        console.print(f"a broker already listens on {embedded.bootstrap_servers}")
        raise typer.Exit(1)
    with embedded:
        console.print(
            f"Tansu listening on {embedded.bootstrap_servers} ({embedded.settings.storage_engine});"
            " Ctrl-C stops it"
        )
        _wait_for_interrupt(lambda: embedded.process is not None and embedded.process.poll() is None)


@app.command()
def topics(
    create: Annotated[bool, typer.Option(help="Create the missing topics on the broker")] = False,
) -> None:
    """Print the topic catalog; with --create, create what is missing (idempotent)."""
    from cepbus.service_runner import bus_topics
    from cepbus.settings import BrokerSettings

    specs = bus_topics()
    settings = BrokerSettings()
    if create:
        from cepbus.admin import ensure_topics

        created = ensure_topics(settings, specs)
        console.print(f"{len(created)} topics created, {len(specs) - len(created)} already there")
    for spec in specs:
        print(
            f"{spec.name}\t{spec.partition_count(settings.topic_partitions)}\t{spec.key}\t{spec.payload.avro_name}"
        )


@app.command()
def router() -> None:
    """Run the router service (a Faust worker)."""
    from cepbus.service_runner import run_service

    run_service("router")


@app.command()
def notifier() -> None:
    """Run the notifier service (a Faust worker)."""
    from cepbus.service_runner import run_service

    run_service("notifier")


@ledger_app.callback(invoke_without_command=True)
def ledger(ctx: typer.Context) -> None:
    """Run the ledger service (a Faust worker) when no subcommand is given."""
    if ctx.invoked_subcommand is None:
        from cepbus.service_runner import run_service

        run_service("ledger")


@ledger_app.command("verify")
def ledger_verify(
    database_url: Annotated[str | None, typer.Option(help="Default: CEPBUS_LEDGER_DATABASE_URL")] = None,
    bundle: Annotated[Path | None, typer.Option(help="Verify this export bundle offline instead")] = None,
    key: Annotated[str | None, typer.Option(help="With --bundle: the published verifier key to pin")] = None,
) -> None:
    """Recompute the whole Merkle tree and check the checkpoints; exit 1 on any mismatch."""
    from cepbus.settings import LedgerSettings
    from services.ledger.store import open_store

    if bundle is not None:
        from cepbus.ledger_cli import verify_bundle_file

        verify_bundle_file(bundle, key)
        return
    settings = LedgerSettings()
    store = open_store(database_url or settings.database_url)
    try:
        verifier = None
        if settings.signing_key_path.exists():
            from services.ledger.signing import load_signer

            verifier = load_signer(settings).verifier()
        result = store.verify(verifier)
    finally:
        store.close()
    if result.ok:
        print(f"ledger verified: {result.entries_checked} entries, root {result.root.hex()}")
        return
    print(f"LEDGER VERIFICATION FAILED at index {result.first_bad_index}: {result.reason}", file=sys.stderr)
    raise typer.Exit(1)


@rules_app.command("explain")
def rules_explain() -> None:
    """Read one intake as JSON on stdin (the Avro intake's field names) and print the decision as JSON."""
    from services.router.rules import explain

    try:
        document = json.loads(sys.stdin.read())
        if not isinstance(document, dict):
            raise ValueError("expected one JSON object (an intake)")
        decision = explain(document)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        print(f"cep-bus rules explain: invalid intake: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc
    print(json.dumps(decision, ensure_ascii=False, indent=2))


@app.command()
def up() -> None:
    """Start the broker (if none answers) and the three services; stay up until interrupted."""
    from cepbus.admin import ensure_topics
    from cepbus.broker import EmbeddedBroker
    from cepbus.service_runner import bus_topics
    from cepbus.settings import BrokerSettings
    from cepbus.supervisor import SERVICES, Supervisor, metrics_port

    embedded = EmbeddedBroker()
    started_broker = False
    if not embedded.already_running():
        embedded.start()
        started_broker = True
    supervisor = Supervisor()
    try:
        ensure_topics(BrokerSettings(), bus_topics())
        for service in SERVICES:
            supervisor.start(service)
        for service in SERVICES:
            supervisor.wait_metrics(service, metrics_port(service))
            console.print(
                f"{service} up, metrics on :{metrics_port(service)},"
                f" log {supervisor.processes[service].log_path}"
            )
        console.print("cep-bus is up; Ctrl-C stops it")
        _wait_for_interrupt(lambda: all(p.alive() for p in supervisor.processes.values()))
        for name, proc in supervisor.processes.items():
            if not proc.alive():
                console.print(
                    f"[red]{name} exited with {proc.process.returncode}[/red]\n{supervisor.tail(name)}"
                )
    finally:
        supervisor.stop_all()
        if started_broker:
            embedded.stop()


@app.command()
def demo(
    intakes: Annotated[int, typer.Option(min=1, help="How many intakes to publish")] = 1000,
    seed: Annotated[int, typer.Option(help="Simulator seed")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the ledger")] = 120.0,
) -> None:
    """Run the whole regulation loop once and print a summary; exit 0 only if it completed and verifies."""
    from cepbus.demo import run_demo
    from cepbus.logs import configure_logging

    configure_logging("demo")
    summary = run_demo(intakes, seed, timeout)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        _print_summary(summary)
    if not (summary["loop_completed"] and summary["ledger_verified"]):
        raise typer.Exit(1)


def _print_summary(summary: dict[str, Any]) -> None:
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
        ("dead letters", summary["dead_letters"]),
        ("referral status updates in the ledger", summary["status_updates_in_ledger"]),
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
    out.print(f"{verdict}; started here: {', '.join(summary['started']) or 'nothing (all were running)'}")


def _wait_for_interrupt(still_running: Any) -> None:
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop["now"] and still_running():
        time.sleep(0.2)


def main() -> None:
    app()
