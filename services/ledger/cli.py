"""`cep-bus ledger ...`: run the ledger service, or work on the transparency log: verify (the store, or a
bundle offline), checkpoint, prove, consistency, export, erase."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

#: --key and --trust of `verify --bundle`, as the auditor's toolkit spells them
BundleKey = Annotated[
    str | None,
    typer.Option("--key", help="With --bundle: the published verifier key (name+hash+base64) to pin"),
]
TrustFile = Annotated[
    Path | None,
    typer.Option("--trust", help="With --bundle: a file of trusted verifier keys, one a line ('#' comments)"),
]

ledger_app = typer.Typer(help="The regulation ledger: run the service, or verify the trail.")

DatabaseUrl = Annotated[str | None, typer.Option(help="Default: CEPBUS_LEDGER_DATABASE_URL")]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _fail(message: str, code: int = 1) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(code)


def _write_owner_only(path: Path, text: str) -> None:
    """Write a file only its owner reads: an export bundle holds no personal data in clear, but it holds
    every person's sealed events and the key ids that link them, for the operator to hand to an auditor
    on purpose (a copy or a chmod), never for whoever shares the host. An existing file is tightened."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)


def _signer(settings: Any) -> Any:
    """The ledger's signer (`load_signer`), or one line and exit 2: a missing key, a key production refuses
    (generated, shared, development material), another log's key."""
    from services.ledger.signing import SigningKeyError, load_signer

    try:
        return load_signer(settings)
    except SigningKeyError as exc:
        raise _fail(f"cep-bus ledger: {exc}", 2) from None


def _open(database_url: str | None) -> Any:
    from services.ledger.settings import LedgerSettings
    from services.ledger.store import SqlLedgerStore

    return SqlLedgerStore(database_url or LedgerSettings().database_url)


def checkpoint(database_url: DatabaseUrl = None) -> None:
    """Sign a checkpoint of the current tree now (after checking it extends the last one)."""
    from cepbus.auditlog.merkle import ProofError
    from services.ledger.settings import LedgerSettings

    signer = _signer(LedgerSettings())  # before opening the store: a refused key touches nothing
    with _open(database_url) as store:
        try:
            made = store.checkpoint(signer)
        except ProofError as exc:
            raise _fail(f"REFUSED to sign: {exc}") from exc
        latest = made or store.latest_checkpoint()
    if latest is None:
        raise _fail("the ledger is empty: nothing to sign")
    print(latest.note, end="")


def prove(
    event: Annotated[str, typer.Option("--event", help="Event id")],
    database_url: DatabaseUrl = None,
) -> None:
    """Print (JSON) the inclusion proof of an event against the latest signed checkpoint."""
    from cepbus.auditlog import merkle
    from services.ledger.settings import LedgerSettings

    verifier = _signer(LedgerSettings()).verifier()
    with _open(database_url) as store:
        index = store.index_of(event)
        if index is None:
            raise _fail(f"event {event} is not in the ledger")
        latest = store.latest_checkpoint()
        if latest is None or latest.checkpoint.size <= index:
            raise _fail(f"event {event} (index {index}) is not covered by a checkpoint yet: "
                        "run `cep-bus ledger checkpoint`")  # fmt: skip
        size = latest.checkpoint.size
        leaf = next(store.entries(index, index + 1)).leaf
        path = store.inclusion_proof(index, size)
    leaf_hash = merkle.leaf_hash(leaf)
    merkle.verify_inclusion(leaf_hash, index, size, path, latest.checkpoint.root)  # never print a bad proof
    print(json.dumps({
        "event_id": event, "index": index, "tree_size": size,
        "leaf_b64": _b64(leaf), "leaf_hash_b64": _b64(leaf_hash),
        "inclusion_path_b64": [_b64(h) for h in path],
        "checkpoint": latest.note, "verifier_key": str(verifier),
    }, indent=2))  # fmt: skip


def consistency(
    old: Annotated[int, typer.Option("--old", min=0, help="Older tree size")],
    new: Annotated[int, typer.Option("--new", min=0, help="Newer tree size")],
    database_url: DatabaseUrl = None,
) -> None:
    """Print (JSON) the consistency proof from tree size OLD to tree size NEW, with both roots."""
    from cepbus.auditlog import merkle

    with _open(database_url) as store:
        size = store.size()
        if not old <= new <= size:
            raise _fail(f"need old <= new <= {size} (the current size), got {old} and {new}")
        proof = store.consistency_proof(old, new)
        old_root, new_root = store.root(old), store.root(new)
        notes = {n: c.note for n in (old, new) if (c := store.checkpoint_at(n)) is not None}
    merkle.verify_consistency(old, new, old_root, new_root, proof)
    print(json.dumps({
        "old_size": old, "new_size": new, "old_root_b64": _b64(old_root), "new_root_b64": _b64(new_root),
        "consistency_path_b64": [_b64(h) for h in proof],
        "checkpoints": {str(k): v for k, v in notes.items()},
    }, indent=2))  # fmt: skip


def export(
    out: Annotated[Path, typer.Option("--out", help="Bundle file to write (JSON)")],
    from_date: Annotated[
        str | None, typer.Option("--from", help="First day of the period, YYYY-MM-DD")
    ] = None,
    to_date: Annotated[str | None, typer.Option("--to", help="Last day of the period, YYYY-MM-DD")] = None,
    sign: Annotated[
        bool, typer.Option("--checkpoint/--no-checkpoint", help="Sign a checkpoint first")
    ] = True,
    database_url: DatabaseUrl = None,
) -> None:
    """Write an offline-verifiable bundle: the latest signed checkpoint, the verifier key, every leaf."""
    from cepbus.auditlog.bundle import export_bundle
    from cepbus.auditlog.context import reference_period
    from cepbus.auditlog.note import NoteError
    from cepbus.progress import progress
    from services.ledger.settings import LedgerSettings

    try:
        days = reference_period(from_date, to_date)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    # the instants that hold every region's days: each region's entries are cut at its own midnights
    # when the report is computed from the bundle (the days travel with it)
    from_ms, to_ms = days.envelope_ms() if days is not None else (None, None)
    signer = _signer(LedgerSettings())
    with _open(database_url) as store:
        if sign:
            store.checkpoint(signer)
        latest = store.latest_checkpoint()
        if latest is None:
            raise _fail("no checkpoint to export against (empty ledger?)")
        try:
            with progress("exporting ledger entries", latest.checkpoint.size) as update:
                document = export_bundle(
                    store,
                    latest,
                    signer,  # signs the period with the checkpoint (cep-bus-ledger-bundle/2)
                    from_ms=from_ms,
                    to_ms=to_ms,
                    days=None if days is None else (from_date, to_date),
                    progress=update,
                )
        except NoteError as exc:  # the latest checkpoint is not this key's: no period signed for it
            raise _fail(f"REFUSED to export: the latest checkpoint is not the ledger key's: {exc}") from None
    _write_owner_only(out, json.dumps(document))
    print(f"wrote {out}: {latest.checkpoint.size} entries, checkpoint root {_b64(latest.checkpoint.root)}")


def erase(
    person: Annotated[str, typer.Option("--person", help="Person pseudonym")],
    database_url: DatabaseUrl = None,
) -> None:
    """Destroy a person's key (their sealed fields become unreadable) and record the erasure."""
    with _open(database_url) as store:
        try:
            index = store.erase(person)
        except KeyError as exc:
            raise _fail(f"nothing erased: {exc.args[0]}") from exc
    print(f"erased {person}: key destroyed, erasure recorded at index {index}")


@ledger_app.callback(invoke_without_command=True)
def ledger(ctx: typer.Context) -> None:
    """Run the ledger service when no subcommand is given."""
    if ctx.invoked_subcommand is None:
        from cepbus.runtime.runner import run_service
        from services.ledger.app import SERVICE, build_service

        run_service(SERVICE, build_service)


@ledger_app.command("verify")
def verify(
    database_url: DatabaseUrl = None,
    bundle: Annotated[
        Path | None, typer.Option(help="Verify this export bundle offline instead (needs --key or --trust)")
    ] = None,
    key: BundleKey = None,
    trust: TrustFile = None,
    not_older_than: Annotated[
        str | None,
        typer.Option(
            "--not-older-than",
            help="With --bundle: refuse a checkpoint signed longer ago than this (24h, 7d)",
        ),
    ] = None,
) -> None:
    """Recompute the whole Merkle tree and check the checkpoints; exit 1 on any mismatch. With --bundle,
    verify an export bundle offline against a pinned key, print its checkpoint's size and signed time:
    exit 1 if it does not verify or its checkpoint is older than --not-older-than, 2 without a key."""
    if bundle is not None:
        from cepbus.auditlog.cli import verify_bundle_file

        verify_bundle_file(bundle, key, trust, "cep-bus ledger verify", not_older_than)
        return
    if key is not None or trust is not None or not_older_than is not None:
        raise _fail("cep-bus ledger verify: --key, --trust and --not-older-than go with --bundle", 2)
    from cepbus.progress import progress
    from services.ledger.settings import LedgerSettings

    settings = LedgerSettings()
    verifier = _signer(settings).verifier() if settings.signing_key_path.exists() else None
    with (
        _open(database_url or settings.database_url) as store,
        progress("verifying ledger entries", store.size()) as update,
    ):
        result = store.verify(verifier, progress=update)
    if result.ok:
        print(f"ledger verified: {result.entries_checked} entries, root {result.root.hex()}")
        return
    print(f"LEDGER VERIFICATION FAILED at index {result.first_bad_index}: {result.reason}", file=sys.stderr)
    raise typer.Exit(1)


for _command in (checkpoint, prove, consistency, export, erase):
    ledger_app.command(_command.__name__)(_command)
