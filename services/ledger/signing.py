"""The ledger's checkpoint signing key, and when to sign a checkpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cepbus.auditlog.note import Signer
from cepbus.trust.modes import TrustProblem
from services.ledger.settings import LedgerSettings

DEFAULT_KEY_PATH = LedgerSettings.model_fields["signing_key_path"].default


def load_signer(settings: LedgerSettings, *, allow_generate: bool = True) -> Signer:
    """The signer key in `signing_key_path` (Go sumdb/note `PRIVATE+KEY+...` text), e.g. a mounted Secret.

    Generated, readable by the owner only, on first use at the development default path when
    `allow_generate` (never in production); a configured path that does not exist is an error, so a
    ledger never silently signs with a fresh key that cannot extend its checkpoints.
    """
    path = Path(settings.signing_key_path)
    if path.exists():
        signer = Signer.parse(path.read_text())
        if signer.name != settings.origin:
            raise ValueError(
                f"{path} holds the key of {signer.name!r}, the ledger origin is {settings.origin!r}"
            )
        return signer
    if path != DEFAULT_KEY_PATH or not allow_generate:
        raise FileNotFoundError(f"ledger signing key {path} does not exist (CEPBUS_LEDGER_SIGNING_KEY_PATH)")
    signer = Signer.generate(settings.origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(str(signer) + "\n")
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
