"""`cep-bus referral ...` and `cep-bus partner`: the referral lifecycle from the command line."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

referral_app = typer.Typer(
    help="Closed-loop referrals: the state machine, a referral's history.", no_args_is_help=True
)


@referral_app.command("states")
def referral_states(
    as_json: Annotated[bool, typer.Option("--json", help="Rows of {from, event, actor, to}")] = False,
) -> None:
    """Print the referral state machine (the single source the README table is checked against)."""
    from services.router.referrals.machine import machine_rows, markdown_table

    print(json.dumps(machine_rows(), indent=2) if as_json else markdown_table())


def _store(database_url: str | None) -> Any:
    from services.router.referrals.settings import ReferralSettings
    from services.router.referrals.store import ReferralStore

    return ReferralStore(database_url or ReferralSettings().database_url)


@referral_app.command("show")
def referral_show(
    referral_id: str,
    database_url: Annotated[str | None, typer.Option(help="Default: CEPBUS_REFERRALS_DATABASE_URL")] = None,
) -> None:
    """Current status and full history of one referral, as JSON; exit 1 if unknown."""
    from services.router.referrals.http import referral_view

    store = _store(database_url)
    try:
        view = referral_view(store, referral_id)
    finally:
        store.close()
    if view is None:
        print(f"unknown referral {referral_id}", file=__import__("sys").stderr)
        raise typer.Exit(1)
    print(json.dumps(view, ensure_ascii=False, indent=2))


@referral_app.command("open")
def referral_open(
    org: Annotated[str, typer.Option(help="Organisation id")],
    database_url: Annotated[str | None, typer.Option(help="Default: CEPBUS_REFERRALS_DATABASE_URL")] = None,
) -> None:
    """Open referrals an organisation sent or received, as JSON."""
    from services.router.referrals.http import open_view

    store = _store(database_url)
    try:
        print(json.dumps(open_view(store, org), ensure_ascii=False, indent=2))
    finally:
        store.close()


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
    from cepbus.directory import load_directory
    from cepbus.logs import configure_logging, get_logger
    from cepbus.partner_example import ExamplePartner, key_loader

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
