"""`cep-bus rules evidence`: the router's record of a person's démission-reconversion intakes."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer


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
    from cepbus.settings import RouterSettings
    from services.router.evidence import volet_cep_evidence
    from services.router.store import open_router_store

    store = open_router_store(database_url or RouterSettings().database_url)
    try:
        evidence = volet_cep_evidence(store, load_reference(), person, every_purpose=every_purpose)
    finally:
        store.close()
    if not evidence["intakes"]:
        what = "intake" if every_purpose else "démission-reconversion intake"
        print(f"cep-bus rules evidence: no {what} recorded for {person}", file=sys.stderr)
        raise typer.Exit(1)
    print(json.dumps(evidence, ensure_ascii=False, indent=2))
