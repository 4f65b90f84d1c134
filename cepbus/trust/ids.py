"""Event ids that a service derives with a secret key of its own.

A service that re-processes an event after a crash must emit the same ids (the ledger dedupes on
them), so derived ids are a function of the cause and a purpose. If that function were public, anyone
could compute the id of an event the router has not emitted yet (a deadline breach, say) and send
junk under it first. So the function is keyed: HMAC-SHA-256 with the service's secret key, truncated
to a UUID. The key is a file named by `<SERVICE>_ID_KEY_PATH` (at least 32 bytes; in production
readable by its owner only, `cepbus.trust.keyfiles`); without one, a development key is used, which
production refuses.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from pathlib import Path

from cepbus.trust.keyfiles import read_key_bytes
from cepbus.trust.modes import TrustProblem

MIN_KEY_BYTES = 32
#: INSECURE, development only: every process without a configured key shares it.
_DEVELOPMENT_ID_KEY = hashlib.sha256(b"cep-bus insecure development event-id key v1").digest()


@dataclass(frozen=True)
class EventIds:
    key: bytes
    development: bool = False

    def derive(self, cause: uuid.UUID | str, purpose: str) -> uuid.UUID:
        """The id of the event derived from `cause` for `purpose`: the same inputs give the same id."""
        mac = hmac.new(self.key, f"{cause}/{purpose}".encode(), hashlib.sha256).digest()
        return uuid.UUID(bytes=mac[:16], version=4)


DEVELOPMENT_IDS = EventIds(_DEVELOPMENT_ID_KEY, development=True)


def load_event_ids(path: Path | None, *, production: bool | None = None) -> EventIds:
    """The service's keyed ids from its key file; the development ids when no file is configured.
    ValueError (`KeyFileError`) for a file production refuses: others may read it (`CEPBUS_ENV`, or
    `production`)."""
    if path is None:
        return DEVELOPMENT_IDS
    key = read_key_bytes(path, "event-id key", production=production).strip()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"event-id key {path}: {len(key)} bytes, at least {MIN_KEY_BYTES} needed")
    return EventIds(key)


def event_id_trust_problems(ids: EventIds, setting: str) -> list[TrustProblem]:
    if not ids.development:
        return []
    return [TrustProblem("derived event ids use the development key", f"set {setting} to a secret key file")]
