"""Who is asking the referral read side: a bearer token bound to one organisation id.

Tokens are issued once (`cep-bus referral issue-token`), handed to the organisation, and only their
SHA-256 is kept, in the file `CEPBUS_REFERRALS_TOKENS_PATH` names:

    {"tokens": [{"org_id": "apec-r11", "sha256": "<hex>"}]}

Without a tokens file (development), the token `dev-<org_id>` authenticates `<org_id>`: derivable, so
production refuses to start with it (`read_side_trust_problems`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from cepbus.trust.modes import TrustProblem

DEV_TOKEN_PREFIX = "dev-"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenError(ValueError):
    """The tokens file is unreadable or malformed."""


@dataclass(frozen=True)
class TokenBook:
    """The organisation each token authenticates (by hash), or development tokens."""

    hashes: tuple[tuple[str, str], ...]  # (sha256 hex, org id)
    known_orgs: frozenset[str]
    development: bool = False

    @classmethod
    def load(cls, path: Path | None, known_orgs: Collection[str]) -> TokenBook:
        if path is None:
            return cls((), frozenset(known_orgs), development=True)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            entries = document["tokens"]
            hashes = tuple((str(e["sha256"]), str(e["org_id"])) for e in entries)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TokenError(f"tokens file {path}: {type(exc).__name__}: {exc}") from None
        return cls(hashes, frozenset(known_orgs))

    def org_for(self, token: str) -> str | None:
        """The organisation the token authenticates, or None. Compares every hash in constant time."""
        if len(token) > 512:
            return None
        if self.development:
            org = token[len(DEV_TOKEN_PREFIX) :] if token.startswith(DEV_TOKEN_PREFIX) else ""
            return org if org in self.known_orgs else None
        digest = _digest(token)
        found = None
        for stored, org in self.hashes:
            if hmac.compare_digest(stored, digest):
                found = org
        return found


def issue_token(org_id: str, path: Path) -> str:
    """A new token for `org_id`, its hash appended to the tokens file (created 0600). Returns the token,
    which is shown once and never stored."""
    token = secrets.token_urlsafe(32)
    entries = []
    if path.exists():
        entries = json.loads(path.read_text(encoding="utf-8")).get("tokens", [])
    entries.append({"org_id": org_id, "sha256": _digest(token)})
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"tokens": entries}, out, indent=2)
    temporary.replace(path)
    return token


def read_side_trust_problems(tokens_path: Path | None) -> list[TrustProblem]:
    if tokens_path is None:
        return [
            TrustProblem(
                "the referral read side accepts derivable development tokens (dev-<org>)",
                "set CEPBUS_REFERRALS_TOKENS_PATH to the tokens file (cep-bus referral issue-token)",
            )
        ]
    return []


__all__ = ["DEV_TOKEN_PREFIX", "TokenBook", "TokenError", "issue_token", "read_side_trust_problems"]
