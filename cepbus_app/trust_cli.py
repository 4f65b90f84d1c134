"""`cep-bus keys ...` and `cep-bus directory ...`: the key ceremony of the referral directory.

An organisation generates its key pair (`keys generate`), keeps the private key (PEM, mode 0600) and
sends the printed public entry to the directory authority. The authority has its own key
(`directory keygen`, whose printed pinned form goes into every deployment's
CEPBUS_DIRECTORY_AUTHORITY_KEY), adds entries (`directory add-key`, `--rotate` to close the previous
key), lists the bus's own services with their keys (`directory add-service`), revokes compromised keys
(`directory revoke`), renews before expiry (`directory renew`), signs (`directory sign`) and publishes
the file; anyone can check it (`directory verify`). Every edit makes a new version (the next serial,
issued now: a service refuses a serial older than the newest it ran with) and drops the signatures:
sign again. `directory upgrade` rewrites a format-2 directory in format 3.

Every failure is one line on stderr: exit 2 for a malformed argument, 1 for anything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError

from cepbus.contract.models import ORG_ID
from cepbus.reference import load_reference
from cepbus.reference.directory import (
    FORMAT,
    MAX_DOCUMENT_BYTES,
    Directory,
    DirectoryKey,
    EncryptionKey,
    ServiceEntry,
    encryption_key_entry,
    format_time,
    key_entry,
    load_directory_from,
    parse_time,
    read_document,
    sign_document,
    split_document,
)
from cepbus.trust.development import is_development_authority_key, is_development_key
from cepbus.trust.keys import (
    AuthorityKey,
    format_authority_key,
    load_private_key,
    parse_authority_key,
    write_private_key,
)
from cepbus.untrusted_json import UnreadableInput, one_line, read_capped

keys_app = typer.Typer(help="Organisation signing keys (Ed25519): generate a key pair.", no_args_is_help=True)
directory_app = typer.Typer(
    help="The signed referral directory: authority key, add or revoke keys, sign, verify.",
    no_args_is_help=True,
)

USAGE = 2
FAILED = 1


class _Failure(Exception):
    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def _fail(message: str, code: int = FAILED) -> NoReturn:
    raise _Failure(message, code)


def _line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn every expected failure into one line on stderr and an exit code, never a traceback."""
    try:
        yield
    except _Failure as failure:
        typer.echo(f"error: {_line(str(failure))}", err=True)
        raise typer.Exit(failure.code) from None
    except FileExistsError as exc:
        typer.echo(f"error: {exc.filename} exists: refusing to overwrite a key file", err=True)
        raise typer.Exit(FAILED) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(FAILED) from None
    except ValidationError as exc:
        typer.echo(f"error: {one_line(exc, limit=6)}", err=True)
        raise typer.Exit(FAILED) from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        typer.echo(f"error: {_line(str(exc)) or type(exc).__name__}", err=True)
        raise typer.Exit(FAILED) from None


def _time_option(name: str, text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return parse_time(text)
    except ValueError as exc:
        _fail(f"{name}: {exc}", USAGE)


def _org_option(org: str) -> str:
    if not re.match(ORG_ID, org):
        _fail(f"--org: {org!r} is not an organisation id (lowercase letters, digits and '-')", USAGE)
    return org


def _private_key(path: Path) -> Ed25519PrivateKey:
    try:
        return load_private_key(path)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        _fail(f"{path}: not an unencrypted PEM Ed25519 private key ({_line(str(exc))})")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """A directory or key entry file as a JSON object, read with a size cap (`read_document`'s rules)."""
    try:
        return read_document(read_capped(path, MAX_DOCUMENT_BYTES, what))
    except UnreadableInput as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(f"{path}: {exc}")


def _read_body(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    document = _read_json(path, "directory")
    try:
        return split_document(document)
    except ValueError as exc:
        _fail(f"{path}: {exc}")


def _validated(body: dict[str, Any], path: Path) -> Directory:
    try:
        return Directory.build(load_reference(), {"signed": body, "signatures": []})
    except ValueError as exc:
        _fail(f"{path}: {exc}")


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """Replace `path` in one step (a reader sees the old file or the new one, never half of it)."""
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _new_version(body: dict[str, Any], path: Path) -> int:
    """An edit makes a new version: the next serial, issued now (services refuse an older serial than
    the newest they ran with, so every signed version needs its own). Returns the new serial."""
    serial = body.get("serial")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 1:
        _fail(f'{path}: "serial" must be a positive integer')
    body["serial"] = serial + 1
    body["issued_at"] = format_time(datetime.now(UTC))
    return serial + 1


def _save_new_version(body: dict[str, Any], path: Path, done: str) -> None:
    """Write an edited directory as its next version, unsigned (every signed version needs its own
    signatures), and say what was `done` with the new serial."""
    serial = _new_version(body, path)
    _validated(body, path)
    _write_json(path, {"signed": body, "signatures": []})
    typer.echo(f"{done}; serial {serial}; signatures dropped: sign again (cep-bus directory sign)", err=True)


def _expires_in(days: int) -> str:
    if days < 1:
        _fail("--expires-in: at least 1 day", USAGE)
    return format_time(datetime.now(UTC) + timedelta(days=days))


def _keys_list(body: dict[str, Any], path: Path, name: str = "keys") -> list[dict[str, Any]]:
    if name == "encryption_keys":
        body.setdefault(name, [])  # a directory from before encryption keys has none yet
    keys = body.get(name)
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        _fail(f'{path}: "{name}" must be a list of key entries')
    return keys


def _development_warnings(directory: Directory) -> list[str]:
    warnings = []
    derivable = sorted({k.org_id for k in directory.all_keys() if is_development_key(k.org_id, k.raw)})
    if derivable and not directory.development:
        warnings.append(
            f"warning: {len(derivable)} organisations have a derivable INSECURE development key"
            f" ({', '.join(derivable[:3])}{', ...' if len(derivable) > 3 else ''})"
        )
    return warnings


@keys_app.command("generate")
def keys_generate(
    org: Annotated[str, typer.Option("--org", help="The organisation id, e.g. apec-r11")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (PEM, 0600, new file)")],
    not_before: Annotated[
        str | None, typer.Option("--not-before", help="ISO-8601 UTC start of validity (default: now)")
    ] = None,
    encryption: Annotated[
        bool,
        typer.Option(
            "--encryption",
            help="An X25519 encryption key (the contacts sealed to you) instead of a signing key",
        ),
    ] = False,
) -> None:
    """Generate an organisation's key pair: write the private key, print its public directory entry."""
    with _one_line_errors():
        org_id = _org_option(org)
        start = _time_option("--not-before", not_before)
        if encryption:
            sealing = X25519PrivateKey.generate()
            write_private_key(sealing, out)
            entry = encryption_key_entry(org_id, sealing, start)
        else:
            key = Ed25519PrivateKey.generate()
            write_private_key(key, out)
            entry = key_entry(org_id, key, start)
        print(json.dumps(entry, ensure_ascii=False))
        kind = "encryption key" if encryption else "private key"
        flag = " --encryption" if encryption else ""
        typer.echo(
            f"wrote {org_id}'s {kind} to {out} (mode 0600; keep it there). Send the entry above"
            f" to the directory authority (cep-bus directory add-key{flag}).",
            err=True,
        )


@directory_app.command("keygen")
def directory_keygen(
    out: Annotated[Path, typer.Option("--out", help="Where to write the authority's private key (new file)")],
) -> None:
    """Generate the directory authority's key: write the private key, print the pinned public key."""
    with _one_line_errors():
        key = Ed25519PrivateKey.generate()
        write_private_key(key, out)
        print(format_authority_key(key))
        typer.echo(
            f"wrote the directory authority's private key to {out} (mode 0600). Pin the line above in"
            " CEPBUS_DIRECTORY_AUTHORITY_KEY of every deployment.",
            err=True,
        )


@directory_app.command("sign")
def directory_sign(
    key: Annotated[Path, typer.Option("--key", help="The authority's private key (PEM)")],
    input_path: Annotated[Path, typer.Option("--in", help="The directory (a full document or the body)")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed directory")],
) -> None:
    """Validate the directory body and sign it with the authority key."""
    with _one_line_errors():
        private = _private_key(key)
        body, signatures = _read_body(input_path)
        directory = _validated(body, input_path)
        authority = AuthorityKey.of(private)
        if is_development_authority_key(authority.raw) and not directory.development:
            _fail("refusing to sign a non-development directory with the INSECURE development authority key")
        for warning in _development_warnings(directory):
            typer.echo(warning, err=True)
        _write_json(out, sign_document(body, private, signatures))
        typer.echo(
            f"signed directory {directory.version} ({len(directory.all_keys())} keys) with authority key"
            f" {authority.key_id} -> {out}",
            err=True,
        )


@directory_app.command("verify")
def directory_verify(
    file: Annotated[Path, typer.Option("--file", help="The signed directory")],
    authority: Annotated[
        str,
        typer.Option(
            "--authority",
            envvar="CEPBUS_DIRECTORY_AUTHORITY_KEY",
            help="The pinned authority key, cep-bus-directory+<key id>+<public key>",
        ),
    ],
) -> None:
    """Check the directory's signature against the pinned authority key, and its content."""
    with _one_line_errors():
        try:
            pinned = parse_authority_key(authority)
        except ValueError as exc:
            _fail(f"--authority: {exc}", USAGE)
        directory = load_directory_from(file, authority_key=pinned)
        keys = directory.all_keys()
        revoked = sum(1 for k in keys if k.revoked_at is not None)
        issued = format_time(directory.issued_at) if directory.issued_at else "?"
        expires = format_time(directory.expires_at) if directory.expires_at else "?"
        if directory.expired():
            _fail(f"{file}: the directory expired at {expires}: renew it (cep-bus directory renew)")
        print(
            f"OK {file}: directory {directory.version}{' (DEVELOPMENT)' if directory.development else ''},"
            f" serial {directory.serial}, issued {issued}, expires {expires}, {len(directory.org_ids())}"
            f" organisations, {len(keys)} keys ({revoked} revoked), signed by authority {pinned.key_id}"
        )

        for warning in _development_warnings(directory):
            typer.echo(warning, err=True)


@directory_app.command("add-key")
def directory_add_key(
    file: Annotated[Path, typer.Option("--file", help="The directory to edit (rewritten, unsigned)")],
    entry: Annotated[Path, typer.Option("--entry", help="A public key entry (JSON, from keys generate)")],
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Close the organisation's open keys at the new key's not_before")
    ] = False,
    encryption: Annotated[
        bool, typer.Option("--encryption", help="An encryption key entry (keys generate --encryption)")
    ] = False,
) -> None:
    """Add an organisation's public key; the old signatures are dropped (sign again)."""
    with _one_line_errors():
        body, _ = _read_body(file)
        raw_entry = _read_json(entry, "key entry")
        model: type[DirectoryKey] | type[EncryptionKey] = EncryptionKey if encryption else DirectoryKey
        try:
            new = model.model_validate(raw_entry)
        except ValidationError as exc:
            _fail(f"{entry}: not a{'n encryption' if encryption else ''} key entry: {one_line(exc, limit=6)}")
        keys = _keys_list(body, file, "encryption_keys" if encryption else "keys")
        if any(k.get("key_id") == new.key_id for k in keys):
            _fail(f"{file}: key {new.key_id} of {new.org_id} is already in the directory")
        closed = []
        if rotate:
            for k in keys:
                if k.get("org_id") != new.org_id or k.get("not_after") is not None or k.get("revoked_at"):
                    continue
                if parse_time(str(k.get("not_before"))) >= new.not_before:
                    _fail(f"{file}: key {k.get('key_id')} starts after the new key: nothing to rotate from")
                k["not_after"] = format_time(new.not_before)
                closed.append(str(k.get("key_id")))
        keys.append(new.to_json())
        keys.sort(key=lambda k: (str(k.get("org_id")), str(k.get("not_before")), str(k.get("key_id"))))
        retired = f", closed {', '.join(closed)} at {format_time(new.not_before)}" if closed else ""
        what = "encryption key" if encryption else "key"
        _save_new_version(
            body,
            file,
            f"added {what} {new.key_id} of {new.org_id} (from {format_time(new.not_before)}){retired}",
        )


@directory_app.command("revoke")
def directory_revoke(
    file: Annotated[Path, typer.Option("--file", help="The directory to edit (rewritten, unsigned)")],
    org: Annotated[str, typer.Option("--org", help="The organisation id")],
    key_id: Annotated[str, typer.Option("--key-id", help="The key to revoke")],
    at: Annotated[
        str | None, typer.Option("--at", help="ISO-8601 UTC time of the revocation (default: now)")
    ] = None,
    encryption: Annotated[bool, typer.Option("--encryption", help="Revoke an encryption key")] = False,
) -> None:
    """Revoke a key from a time on (updates recorded from then on no longer verify with it)."""
    with _one_line_errors():
        org_id = _org_option(org)
        when = _time_option("--at", at)
        body, _ = _read_body(file)
        keys = _keys_list(body, file, "encryption_keys" if encryption else "keys")
        found = [k for k in keys if k.get("org_id") == org_id and k.get("key_id") == key_id]
        if not found:
            _fail(f"{file}: no key {key_id} of {org_id}")
        if found[0].get("revoked_at") is not None:
            _fail(f"{file}: key {key_id} of {org_id} is already revoked at {found[0]['revoked_at']}")
        found[0]["revoked_at"] = format_time(when)
        _save_new_version(body, file, f"revoked key {key_id} of {org_id} at {format_time(when)}")


@directory_app.command("add-service")
def directory_add_service(
    file: Annotated[Path, typer.Option("--file", help="The directory to edit (rewritten, unsigned)")],
    org: Annotated[str, typer.Option("--org", help="The service's organisation id, e.g. cep-bus-router")],
    role: Annotated[str, typer.Option("--role", help="router, notifier, ledger or deadletters")],
    entry: Annotated[Path, typer.Option("--entry", help="Its public key entry (JSON, from keys generate)")],
    name: Annotated[str | None, typer.Option("--name", help="A readable name")] = None,
) -> None:
    """List one of the bus's own services with its key: what it signs (decisions, notices, verdicts,
    dead letters) verifies against it. A new version: sign again."""
    with _one_line_errors():
        org_id = _org_option(org)
        body, _ = _read_body(file)
        try:
            service = ServiceEntry(org_id=org_id, role=role, name=name or org_id)
        except ValidationError as exc:
            _fail(f"--role: {one_line(exc, limit=2)}", USAGE)
        raw_entry = _read_json(entry, "key entry")
        try:
            key = DirectoryKey.model_validate(raw_entry)
        except ValidationError as exc:
            _fail(f"{entry}: not a key entry: {one_line(exc, limit=6)}")
        if key.org_id != org_id:
            _fail(f"{entry}: the key is {key.org_id}'s, not {org_id}'s")
        services = body.setdefault("services", [])
        if not isinstance(services, list) or any(
            isinstance(x, dict) and x.get("org_id") == org_id for x in services
        ):
            _fail(f"{file}: {org_id} is already listed (add a key to it with add-key --rotate)")
        services.append(service.model_dump(mode="json"))
        _keys_list(body, file).append(key.to_json())
        _save_new_version(body, file, f"listed the {role} service {org_id} with key {key.key_id}")


@directory_app.command("renew")
def directory_renew(
    file: Annotated[Path, typer.Option("--file", help="The directory to edit (rewritten, unsigned)")],
    expires_in: Annotated[int, typer.Option("--expires-in", help="Days until the new version expires")] = 90,
) -> None:
    """A new version of the same content, issued now and expiring in `--expires-in` days: production
    refuses an expired directory, so the authority renews before it expires. Sign again."""
    with _one_line_errors():
        body, _ = _read_body(file)
        body["expires_at"] = _expires_in(expires_in)
        _save_new_version(body, file, f"renewed, expires {body['expires_at']}")


@directory_app.command("upgrade")
def directory_upgrade(
    input_path: Annotated[Path, typer.Option("--in", help="A directory of format cep-bus-directory/2")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the format-3 body (unsigned)")],
    expires_in: Annotated[int, typer.Option("--expires-in", help="Days until it expires")] = 90,
) -> None:
    """Rewrite a format-2 directory in format 3: serial 1, issued now, an expiry, no service yet (list
    each of the bus's services with add-service, then sign)."""
    with _one_line_errors():
        document = _read_json(input_path, "directory")
        inner = document.get("signed", document)
        if not isinstance(inner, dict) or inner.get("format") != "cep-bus-directory/2":
            _fail(f"{input_path}: not a directory of format cep-bus-directory/2")
        body = dict(inner)
        body.update(
            format=FORMAT,
            serial=1,
            issued_at=format_time(datetime.now(UTC)),
            expires_at=_expires_in(expires_in),
            services=[],
        )
        _validated(body, input_path)
        _write_json(out, {"signed": body, "signatures": []})
        typer.echo(
            f"wrote {out} in {FORMAT} (serial 1, expires {body['expires_at']}); list the bus's services"
            " (cep-bus keys generate, cep-bus directory add-service), then sign (cep-bus directory sign)",
            err=True,
        )
