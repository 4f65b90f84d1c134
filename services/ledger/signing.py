"""The ledger's checkpoint signing key, and when to sign a checkpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cepbus.auditlog.note import NoteError, Signer
from cepbus.trust.keyfiles import KeyFileError, mark_development, read_key_file, without_comments
from cepbus.trust.modes import TrustProblem
from cepbus.trust.settings import TrustSettings
from services.ledger.settings import LedgerSettings

DEFAULT_KEY_PATH = LedgerSettings.model_fields["signing_key_path"].default
SETTING = "CEPBUS_LEDGER_SIGNING_KEY_PATH"


class SigningKeyError(ValueError):
    """The ledger's signing key cannot be used (missing, refused in production, malformed, another log's):
    one line naming the file and the fix; the commands exit 2 with it, the service refuses to start."""


def load_signer(
    settings: LedgerSettings, *, allow_generate: bool = True, production: bool | None = None
) -> Signer:
    """The signer key in `signing_key_path` (Go sumdb/note `PRIVATE+KEY+...` text), e.g. a mounted Secret.

    Generated on first use at the development default path when `allow_generate`, readable by the owner
    only and marked as development material (`cepbus.trust.keyfiles`); never in production
    (`CEPBUS_ENV`, or `production`), whatever the caller asks: a key is created apart, by the organisation
    (docs/runbook.md). A configured path that does not exist is an error, so a ledger never silently signs
    with a fresh key that cannot extend its checkpoints. In production the file must be readable by its
    owner only and not development material.
    """
    production = TrustSettings().production if production is None else production
    path = Path(settings.signing_key_path)
    if path.exists():
        try:
            signer = Signer.parse(without_comments(read_key_file(path, SETTING, production=production)))
        except KeyFileError as exc:
            raise SigningKeyError(str(exc)) from None
        except NoteError as exc:
            raise SigningKeyError(f"{SETTING} {path}: {exc}") from None
        if signer.name != settings.origin:
            raise SigningKeyError(
                f"{path} holds the key of {signer.name!r}, the ledger origin is {settings.origin!r}"
            )
        return signer
    if production:
        raise SigningKeyError(
            f"ledger signing key {path} does not exist, and production never generates one: create it "
            f"apart (docs/runbook.md) and set {SETTING} to it"
        )
    if path != DEFAULT_KEY_PATH or not allow_generate:
        raise SigningKeyError(f"ledger signing key {path} does not exist ({SETTING})")
    signer = Signer.generate(settings.origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(mark_development(str(signer) + "\n"))
    return signer


@dataclass
class CheckpointPolicy:
    """Sign when `every_entries` entries arrived since the last checkpoint, or when `every_s` seconds
    passed and anything arrived at all."""

    every_entries: int
    every_s: float
    last_size: int = 0
    last_at_s: float = 0.0

    def due(self, size: int, now_s: float) -> bool:
        if size <= self.last_size:
            return False
        return size - self.last_size >= self.every_entries or now_s - self.last_at_s >= self.every_s

    def signed(self, size: int, now_s: float) -> None:
        self.last_size, self.last_at_s = size, now_s


def signing_key_trust_problems(settings: LedgerSettings) -> list[TrustProblem]:
    if Path(settings.signing_key_path) == DEFAULT_KEY_PATH:
        return [
            TrustProblem(
                "the ledger signs checkpoints with a key generated at the development default path",
                "set CEPBUS_LEDGER_SIGNING_KEY_PATH to the key mounted from its Secret",
            )
        ]
    return []
