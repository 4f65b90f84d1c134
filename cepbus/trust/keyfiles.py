"""Private key files as production accepts them: readable by no one but their owner, and not development
material.

Every key file cep-bus writes in development (the ledger's checkpoint key generated at its development
default path) starts with the line `DEVELOPMENT_MARKER`, a comment the loaders skip: copied elsewhere and
named by an absolute path, it is still recognised. In production (`CEPBUS_ENV=production`)
`read_key_file` refuses, with one line naming the file and the fix:

- a file that other users may access (any of the mode's "other" bits);
- a file its owner shares with a group (any group bit), except a root-owned file the group may only read:
  PostgreSQL's rule for its TLS key. A Kubernetes secret volume is mounted that way (root, the pod's
  `fsGroup`, `defaultMode: 0440`), where the group is the pod's own;
- a file carrying the development marker.

The mode is read from the descriptor the key is read through (`fstat`), so the file checked is the
file read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cepbus.trust.settings import TrustSettings

#: The first line of every key file cep-bus generates in development.
DEVELOPMENT_MARKER = "# cep-bus development key: refused in production"
#: Largest key file read (a key is a line or a PEM block; this is a bound on a wrong path, not a size).
MAX_KEY_FILE_BYTES = 64 * 1024


class KeyFileError(ValueError):
    """A key file production refuses, or cannot read; the message is one line naming the file and the fix."""


def mark_development(text: str) -> str:
    """`text` (a key file's content) with the development marker as its first line."""
    return f"{DEVELOPMENT_MARKER}\n{text}"


def without_comments(text: str) -> str:
    """The key file text without its comment lines (`#` first): what the key parsers read."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#"))


def permission_problem(mode: int, owner_uid: int) -> str | None:
    """What is wrong with a key file's permissions (None: nothing), by the rule of the module doc."""
    if mode & stat.S_IRWXO:
        return f"mode {stat.S_IMODE(mode):04o} lets every user of the machine access it"
    group = mode & stat.S_IRWXG
    if group and not (owner_uid == 0 and group == stat.S_IRGRP):
        return f"mode {stat.S_IMODE(mode):04o} shares it with its group"
    return None


def read_key_bytes(path: Path, setting: str, *, production: bool | None = None) -> bytes:
    """The bytes of the key file `path` (named by `setting`, for the message). In production, KeyFileError
    when others may read it or it is development material; in any mode, KeyFileError when it cannot be
    read."""
    production = TrustSettings().production if production is None else production
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise KeyFileError(f"{setting} {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as opened:
        status = os.fstat(opened.fileno())
        data = opened.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{setting} {path}: larger than {MAX_KEY_FILE_BYTES} bytes, not a key file")
    if not production:
        return data
    problem = permission_problem(status.st_mode, status.st_uid)
    if problem is not None:
        raise KeyFileError(
            f"{setting} {path}: {problem}; production refuses a key others can read (chmod 600 {path})"
        )
    if DEVELOPMENT_MARKER.encode() in data:
        raise KeyFileError(
            f"{setting} {path} is a development key cep-bus generated (its first line says so); production "
            "refuses it: create the production key apart (docs/runbook.md) and point the setting at it"
        )
    return data


def read_key_file(path: Path, setting: str, *, production: bool | None = None) -> str:
    """`read_key_bytes` as UTF-8 text (KeyFileError when it is not)."""
    data = read_key_bytes(path, setting, production=production)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{setting} {path}: not UTF-8 text, not a key file") from None


__all__ = [
    "DEVELOPMENT_MARKER",
    "KeyFileError",
    "mark_development",
    "permission_problem",
    "read_key_bytes",
    "read_key_file",
    "without_comments",
]
