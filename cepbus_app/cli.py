"""The `cep-bus` command: one entry point that mounts each service's commands (`services/*/cli.py`)
beside what needs the whole bus (`broker`, `up`, `demo`, `topics`, `partner`, `k8s`)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cepbus_app.instrumented import requests_from
from cepbus_app.k8s import k8s_app
from cepbus_app.trust_cli import directory_app, keys_app
from services.deadletters import cli as deadletters_cli
from services.deadletters.cli import deadletters_app
from services.ledger.audit_cli import audit_app
from services.ledger.cli import ledger_app
from services.router.cli import referral_app, rules_app

app = typer.Typer(
    help="cep-bus: inter-operator regulation and referrals of the CEP, on Kafka.", no_args_is_help=True
)
app.add_typer(ledger_app, name="ledger")
app.add_typer(deadletters_app, name="deadletters")
# replays run as the ops KafkaUser; the ACL test records them when the environment asks for it
deadletters_cli.sender_factory = lambda: deadletters_cli.BrokerSender(requests_from(os.environ))
app.add_typer(rules_app, name="rules")
app.add_typer(audit_app, name="audit")
app.add_typer(referral_app, name="referral")
app.add_typer(k8s_app, name="k8s")
app.add_typer(keys_app, name="keys")
app.add_typer(directory_app, name="directory")
console = Console(stderr=True)


@app.command()
def broker() -> None:
    """Run the embedded Tansu broker on loopback until interrupted."""
    from cepbus_app.broker import EmbeddedBroker

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
    wiring: Annotated[
        bool, typer.Option("--wiring", help="Who reads and writes what (cepbus/contract/wiring.py)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --wiring: as one JSON object")] = False,
) -> None:
    """Print the topic catalog; with --create, create what is missing (idempotent); with --wiring, each
    principal's reads, writes and consumer groups (`*` ends a prefix), from which the ACLs are made."""
    from cepbus.runtime.admin import bus_topics, ensure_topics
    from cepbus.runtime.settings import BrokerSettings

    if wiring:
        from cepbus.contract.wiring import wiring as declared

        principals = declared()
        if as_json:
            print(json.dumps(principals, indent=1))
            return
        for name, access in principals.items():
            print(name)
            for what in ("reads", "writes", "groups"):
                print(f"  {what:7} {', '.join(access[what]) or '-'}")
        return

    specs = bus_topics()
    settings = BrokerSettings()
    if create:
        created = ensure_topics(settings, specs)
        console.print(f"{len(created)} topics created, {len(specs) - len(created)} already there")
    for spec in specs:
        print(
            f"{spec.name}\t{spec.partition_count(settings.topic_partitions)}\t{spec.key}\t{spec.payload.avro_name}"
        )


@app.command()
def asyncapi(
    out: Annotated[
        Path, typer.Option(help="Folder of asyncapi.yaml, its payload schemas and index.html")
    ] = Path("docs/asyncapi"),
) -> None:
    """Write the AsyncAPI 3.0 document of the bus (from the topic catalog, the wiring and the schemas),
    its self-contained Avro payloads and its HTML page; tests/unit/contract/test_asyncapi.py fails until
    the committed copy is regenerated."""
    from cepbus.contract.asyncapi import write_asyncapi

    written = write_asyncapi(out)
    console.print(f"{len(written)} files written under {out}")


@app.command()
def vectors(
    out: Annotated[Path, typer.Option(help="Folder of the vector files")] = Path("schemas/vectors"),
    reseal: Annotated[
        bool, typer.Option(help="Also seal the contact vectors anew (sealed-contacts.json: new random boxes)")
    ] = False,
) -> None:
    """Write the contract's golden vectors (one fr.cepbus.X.json per event type, from the examples of
    cepbus_app/vectors/examples.py); tests/unit/contract/test_golden_vectors.py fails until the committed
    copy is regenerated. README.md beside them is hand-written."""
    from cepbus_app.vectors.sealed import write_sealed_vectors
    from cepbus_app.vectors.writer import write_vectors

    if reseal:
        console.print(f"sealed contacts written to {write_sealed_vectors(out)}")

    written = write_vectors(out)
    console.print(f"{len(written)} vector files written under {out}")


@app.command()
def router() -> None:
    """Run the router service (as `python -m services.router`)."""
    from cepbus_app.instrumented import run_instrumented

    run_instrumented("router")


@app.command()
def notifier() -> None:
    """Run the notifier service (as `python -m services.notifier`)."""
    from cepbus_app.instrumented import run_instrumented

    run_instrumented("notifier")


@app.command()
def mailer() -> None:
    """Run the mailer service (as `python -m services.mailer`; settings CEPBUS_MAILER_)."""
    from cepbus_app.instrumented import run_instrumented

    run_instrumented("mailer")


@app.command()
def inbox() -> None:
    """Serve the partner inbox web application (as `python -m services.inbox`; settings CEPBUS_INBOX_)."""
    from cepbus_app.instrumented import run_instrumented

    run_instrumented("inbox")


@app.command()
def up(
    max_restarts: Annotated[
        int, typer.Option(min=0, help="Deaths of one service tolerated within 5 minutes before giving up")
    ] = 5,
) -> None:
    """Start the broker (if none answers) and the stream services, restart one that dies (with backoff);
    stay up until interrupted. A service that keeps dying stops everything, with a non-zero exit."""
    from cepbus.runtime.admin import bus_topics, ensure_topics
    from cepbus.runtime.settings import BrokerSettings
    from cepbus_app.broker import EmbeddedBroker
    from cepbus_app.supervisor import SERVICES, RestartPolicy, Supervisor, metrics_port

    embedded = EmbeddedBroker()
    started_broker = False
    if not embedded.already_running():
        embedded.start()
        started_broker = True
    supervisor = Supervisor(policy=RestartPolicy(max_restarts=max_restarts))
    watcher = None
    try:
        ensure_topics(BrokerSettings(), bus_topics())
        for service in SERVICES:
            supervisor.start(service)
        for service in SERVICES:
            try:
                supervisor.wait_metrics(service, metrics_port(service))
            except (RuntimeError, TimeoutError) as exc:  # it died or hangs at start: say which, and why
                console.print(f"[red]{service} did not start[/red]: {exc}")
                raise typer.Exit(3) from None
            console.print(
                f"{service} up, metrics on :{metrics_port(service)},"
                f" log {supervisor.processes[service].log_path}"
            )
        console.print("cep-bus is up; a service that dies is restarted; Ctrl-C stops it")
        watcher = supervisor.supervise()
        _wait_for_interrupt(watcher.is_alive)
        if watcher.gave_up is not None:
            failed = watcher.gave_up
            console.print(f"[red]{failed}[/red]; stopping cep-bus\n{failed.tail}")
            raise typer.Exit(3)
    finally:
        if watcher is not None:
            watcher.stop()
        for name, code in supervisor.deaths().items():
            restarts = supervisor.restarts().get(name, 0)
            console.print(f"{name}: died (last exit code {code}), restarted {restarts} times")
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
    from cepbus.runtime.logs import configure_logging
    from cepbus_app.demo.loop import run_demo
    from cepbus_app.demo.summary import print_summary

    configure_logging("demo")
    summary = run_demo(intakes, seed, timeout)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print_summary(summary)
    if not (summary["loop_completed"] and summary["ledger_verified"]):
        raise typer.Exit(1)


@app.command("schema-registry")
def schema_registry(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8081,
) -> None:
    """Serve schemas/avro read-only on the Confluent Schema Registry REST paths (development)."""
    from cepbus_app.schema_registry import ContractRegistry, serve

    registry = ContractRegistry()
    console.print(
        f"contract schema registry on http://{host}:{port}: {len(registry.subjects)} subjects,"
        f" {len(registry.by_id)} schemas (read-only); Ctrl-C stops it"
    )
    serve(host, port)


@app.command()
def partner(
    org: Annotated[list[str] | None, typer.Option(help="Organisation id to act for (repeatable)")] = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="Act for every organisation of this kind (repeatable), e.g. apec")
    ] = None,
    delay: Annotated[float, typer.Option(min=0, help="Seconds between two steps of a referral")] = 0.0,
    refusal_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of referrals declined")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the accept/decline draw")] = 0,
    key_file: Annotated[
        Path | None, typer.Option(help="PEM Ed25519 key (one --org); default: dev keys")
    ] = None,
    group_id: Annotated[
        str | None, typer.Option(help="Consumer group (default cepbus-partner-<first org>)")
    ] = None,
) -> None:
    """Run the example partner: receive, accept (or decline), book, hold and complete referrals."""
    from cepbus.reference.directory import load_directory
    from cepbus.runtime.logs import configure_logging, get_logger
    from cepbus_app.demo.partner import ExamplePartner, key_loader

    configure_logging("partner")
    directory = load_directory()
    orgs = list(org or [])
    for wanted in kind or []:
        orgs += [entry.org_id for entry in directory.entries() if entry.kind.value == wanted]
    if not orgs:
        raise typer.BadParameter("give --org ID or --kind KIND")
    if key_file is not None and len(orgs) != 1:
        raise typer.BadParameter("--key-file signs for exactly one --org")
    for org_id in orgs:
        directory.get(org_id)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    example = ExamplePartner(orgs, delay, refusal_rate, seed, key_loader(key_file), group_id=group_id)
    get_logger().info("partner_starting", organisations=len(orgs), delay_s=delay, refusal_rate=refusal_rate)
    example.run(stop)
    get_logger().info("partner_stopped", **dict(example.stats))


@app.command()
def erase(
    person: Annotated[str, typer.Option("--person", help="Person pseudonym")],
    as_json: Annotated[bool, typer.Option("--json", help="Print what was erased as JSON")] = False,
) -> None:
    """Erase a person across every store: the ledger, the router's, the referrals', the notifier's (its
    outbox), the dead letters and the mailer's, as each store declares (cepbus_app/erasure.py)."""
    import dataclasses

    from cepbus_app.erasure import erase_person
    from services.deadletters.settings import DeadLetterSettings
    from services.ledger.settings import LedgerSettings
    from services.mailer.settings import MailerSettings
    from services.notifier.settings import NotifierSettings
    from services.router.settings import ReferralSettings, RouterSettings

    report = erase_person(
        person,
        ledger_url=LedgerSettings().database_url,
        router_url=RouterSettings().database_url,
        referrals_url=ReferralSettings().database_url,
        notifier_url=NotifierSettings().database_url,
        deadletters_url=DeadLetterSettings().database_url,
        mailer_url=MailerSettings().database_url,
    )
    print(json.dumps(dataclasses.asdict(report)) if as_json else report.summary())


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
