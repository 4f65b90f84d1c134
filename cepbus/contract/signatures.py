"""Public keys in the directory's notation; what is left of the in-body status signatures.

`ReferralStatusChanged.signer_org_id` and `.signature` once carried an Ed25519 signature of the update's
fields, made by the partner and checked by the router. They are superseded by the statement signature
every event carries in its `cepbus-signature` header (`cepbus.contract.statements`, docs/contract.md
"Every statement signed by its author"): it covers the event's exact bytes, every event type and every
author, and the runtime verifies it at the edge, so the router takes the signer the edge verified. Nothing
fills the two fields any more and nothing reads them; they stay in the schema because removing a field
breaks the evolution gate (old events, and ledgers holding them, must still decode).
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64: the directory's notation."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


__all__ = ["public_key_b64"]
