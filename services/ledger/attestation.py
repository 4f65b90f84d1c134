"""What the audit report from the ledger's own database was computed from, and how it was verified, for
the document's cover (`cep-bus audit report` without `--bundle`): the latest signed checkpoint and a
full `store.verify()`, as `cep-bus ledger verify` runs it.
"""

from __future__ import annotations

import base64
from typing import Any


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ledger_attestation(database_url: str) -> dict[str, Any]:
    """The ledger's latest signed checkpoint and the result of a full `store.verify()` (as `cep-bus ledger
    verify` runs it: checkpoint signatures checked with the ledger's own key when its file exists)."""
    from services.ledger.settings import LedgerSettings
    from services.ledger.signing import load_signer
    from services.ledger.store import SqlLedgerStore

    settings = LedgerSettings()
    problem = None
    verifier = None
    if settings.signing_key_path.exists():
        try:
            verifier = load_signer(settings, allow_generate=False).verifier()
        except (OSError, ValueError) as exc:
            problem = f"signing key unusable, signatures not checked: {exc}"
    from cepbus.progress import progress

    with SqlLedgerStore(database_url) as store:
        with progress("verifying ledger entries", store.size()) as update:
            result = store.verify(verifier, progress=update)
        latest = store.latest_checkpoint()
    checkpoint = None
    if latest is not None:
        checkpoint = {
            "origin": latest.checkpoint.origin,
            "tree_size": latest.checkpoint.size,
            "root_b64": _b64(latest.checkpoint.root),
            "signed_at_ms": latest.signed_at_ms,
            "note": latest.note,
        }
    return {
        "origin": latest.checkpoint.origin if latest is not None else settings.origin,
        "checkpoint": checkpoint,
        "verification": {
            "method": "ledger",
            "ok": result.ok,
            "entries_checked": result.entries_checked,
            "root_b64": _b64(result.root),
            "first_bad_index": result.first_bad_index,
            "reason": result.reason,
            "signatures_checked_with": None if verifier is None else str(verifier),
            "key_problem": problem,
        },
    }


__all__ = ["ledger_attestation"]
