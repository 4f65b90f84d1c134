"""Refusing development trust material in production, and saying loudly when it is used elsewhere.

Each service lists what it relies on as `TrustProblem`s (a derivable key, the example directory, a
ledger key it would generate, an unauthenticated read side); `enforce` turns them into a one-line
refusal in production and a warning in development.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cepbus.trust.settings import TrustSettings


class TrustError(RuntimeError):
    """Trust material that production refuses; the message is one line saying what and how to fix it."""


@dataclass(frozen=True)
class TrustProblem:
    what: str  # e.g. "the referral directory is the packaged example"
    fix: str  # e.g. "set CEPBUS_DIRECTORY_PATH to the signed directory"

    def __str__(self) -> str:
        return f"{self.what} ({self.fix})"


def enforce(problems: Iterable[TrustProblem], settings: TrustSettings | None = None) -> list[TrustProblem]:
    """Raise TrustError in production if there is any problem; in development return them (to log)."""
    found = list(problems)
    settings = settings or TrustSettings()
    if found and settings.production:
        raise TrustError("refusing development trust material in production: " + "; ".join(map(str, found)))
    return found
