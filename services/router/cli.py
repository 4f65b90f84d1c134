"""The router's commands: `cep-bus rules explain|evidence` and `cep-bus referral states|show|open`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

rules_app = typer.Typer(help="The regulation rules.", no_args_is_help=True)
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
    from services.router.referrals.store import ReferralStore
    from services.router.settings import ReferralSettings

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
        print(f"unknown referral {referral_id}", file=sys.stderr)
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


#: The most `cep-bus rules explain` reads on stdin: one intake is a few hundred bytes.
MAX_INTAKE_BYTES = 1 << 20


@referral_app.command("issue-token")
def referral_issue_token(
    org: Annotated[str, typer.Option(help="The organisation the token authenticates")],
    tokens_file: Annotated[
        Path, typer.Option(help="The read side's tokens file (CEPBUS_REFERRALS_TOKENS_PATH)")
    ],
) -> None:
    """Issue a bearer token for the referral read side; print it once (only its hash is kept)."""
    from cepbus.reference.directory import DirectoryError, load_directory
    from services.router.referrals.auth import TokenError, issue_token

    try:
        load_directory().get(org)
        token = issue_token(org, tokens_file)
    except (DirectoryError, TokenError, OSError, ValueError) as exc:
        print(f"cep-bus referral issue-token: {exc}", file=sys.stderr)
        raise typer.Exit(1) from exc
    print(token)


@rules_app.command("explain")
def rules_explain() -> None:
    """Read one intake as JSON on stdin (the Avro intake's field names) and print the decision as JSON.
    Exit 2, with one line on stderr, on any input that is not such an intake."""
    from services.router.rules_input import explain, parse_intake_json

    stream = getattr(sys.stdin, "buffer", None)
    try:
        data: bytes | str = (
            stream.read(MAX_INTAKE_BYTES + 1) if stream else sys.stdin.read(MAX_INTAKE_BYTES + 1)
        )
        if len(data) > MAX_INTAKE_BYTES:
            raise ValueError(f"the input is larger than {MAX_INTAKE_BYTES} bytes")
        decision = explain(parse_intake_json(data))
    except (OSError, ValueError) as exc:  # parse_intake_json and explain raise one-line ValueErrors
        message = " ".join(str(exc).split())
        print(f"cep-bus rules explain: invalid intake: {message}", file=sys.stderr)
        raise typer.Exit(2) from None
    print(json.dumps(decision, ensure_ascii=False, indent=2))


@rules_app.command("evidence")
def rules_evidence(
    person: Annotated[str, typer.Option(help="The person's pseudonym")],
    database_url: Annotated[
        str | None, typer.Option(help="The router's store; default: CEPBUS_ROUTER_DATABASE_URL")
    ] = None,
    every_purpose: Annotated[
        bool, typer.Option("--all", help="Every intake of the person, not only démission-reconversion")
    ] = False,
) -> None:
    """Print, as JSON, the evidence for the "volet CEP" of a démission-reconversion file: when the
    CEP was requested, the intake, the decision, the notice, the choice and the levels of service.
    Exit 1 when the router holds no such intake for the person."""
    from cepbus.reference import load_reference
    from services.router.evidence import volet_cep_evidence
    from services.router.settings import RouterSettings
    from services.router.store import RouterStore

    store = RouterStore(database_url or RouterSettings().database_url)
    try:
        evidence = volet_cep_evidence(store, load_reference(), person, every_purpose=every_purpose)
    finally:
        store.close()
    if not evidence["intakes"]:
        what = "intake" if every_purpose else "démission-reconversion intake"
        print(f"cep-bus rules evidence: no {what} recorded for {person}", file=sys.stderr)
        raise typer.Exit(1)
    print(json.dumps(evidence, ensure_ascii=False, indent=2))
