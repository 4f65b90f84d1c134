"""The `cep-bus` command keeps every command, and mounts each service's own (services/*/cli.py)."""

from __future__ import annotations

import typer.main

from cepbus_app.cli import app


def command_tree(group: typer.Typer) -> dict[str, object]:
    click_group = typer.main.get_command(group)
    tree: dict[str, object] = {}

    def walk(command: object, into: dict[str, object]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            into[name] = {}
            walk(sub, into[name])  # type: ignore[arg-type]

    walk(click_group, tree)
    return tree


def test_every_command_is_there() -> None:
    tree = command_tree(app)
    assert set(tree) == {
        "broker", "topics", "router", "notifier", "ledger", "mailer", "up", "demo", "partner", "erase",
        "rules", "audit", "referral", "k8s", "keys", "directory", "deadletters",
        "asyncapi", "vectors", "schema-registry", "inbox",
    }  # fmt: skip
    assert set(tree["deadletters"]) == {"list", "show", "replay"}  # type: ignore[arg-type]
    assert set(tree["ledger"]) == {"verify", "checkpoint", "prove", "consistency", "export", "erase"}  # type: ignore[arg-type]
    assert set(tree["rules"]) == {"explain", "evidence"}  # type: ignore[arg-type]
    assert set(tree["audit"]) == {"report"}  # type: ignore[arg-type]
    assert set(tree["referral"]) == {"states", "show", "open", "issue-token"}  # type: ignore[arg-type]
    assert set(tree["k8s"]) == {"topics", "users", "prometheus-rule"}  # type: ignore[arg-type]
