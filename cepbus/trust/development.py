"""INSECURE DEVELOPMENT TRUST MATERIAL. NEVER USE IN PRODUCTION. ANYONE CAN COMPUTE THESE KEYS.

Every key here is derived from public information (an organisation id, a fixed tag) by a public
function: whoever reads this file can sign an "accepted" for Apec, or sign a whole referral directory
as its authority. They exist so that the demo, the embedded bus and the tests run without any key
ceremony, and for nothing else. This module is the only home of development trust material; production
refuses it (`cepbus.reference.directory.directory_trust_problems`, `cepbus.trust.modes.enforce`).

- `dev_private_key(org_id)`: an organisation's development signing key (the packaged example
  directory lists their public halves);
- `dev_encryption_key(org_id)`: an organisation's development encryption (X25519) key, to which
  referral contacts are sealed in the demo and the tests;
- `dev_authority_key()`: the development directory authority, which signs the packaged example
  directory;
- `is_development_key(org_id, key)` / `is_development_authority_key(key)`: detect them, so that a
  directory carrying one is flagged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

#: INSECURE: the tag of the derivable organisation keys (changing it changes every development key).
DEV_KEY_TAG = b"cep-bus insecure development key v1:"
#: INSECURE: the tag of the derivable organisation encryption keys.
DEV_ENCRYPTION_KEY_TAG = b"cep-bus insecure development encryption key v1:"
#: INSECURE: the seed tag of the derivable directory authority key.
DEV_AUTHORITY_TAG = b"cep-bus insecure development directory-authority key v1"


def dev_private_key(org_id: str) -> Ed25519PrivateKey:
    """INSECURE, development and demo only: a key anyone can derive from the organisation id."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(DEV_KEY_TAG + org_id.encode()).digest())


def dev_encryption_key(org_id: str) -> X25519PrivateKey:
    """INSECURE, development and demo only: an encryption key anyone can derive from the organisation id;
    whoever reads this opens every contact sealed to it."""
    return X25519PrivateKey.from_private_bytes(
        hashlib.sha256(DEV_ENCRYPTION_KEY_TAG + org_id.encode()).digest()
    )


def is_development_encryption_key(org_id: str, raw: bytes) -> bool:
    """True when `raw` is the public half of `dev_encryption_key(org_id)`."""
    public = dev_encryption_key(org_id).public_key()
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw


def dev_authority_key() -> Ed25519PrivateKey:
    """INSECURE, development and demo only: the directory authority key anyone can derive; it signs
    the packaged example directory, so its signature proves nothing."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(DEV_AUTHORITY_TAG).digest())


def _raw(key: Ed25519PublicKey | bytes | str) -> bytes | None:
    if isinstance(key, Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(key, str):
        try:
            return base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            return None
    return bytes(key)


def _public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def is_development_key(org_id: str, public_key: Ed25519PublicKey | bytes | str) -> bool:
    """True when `public_key` (a key, its 32 raw bytes or their base64) is the derivable development
    key of `org_id`."""
    return _raw(public_key) == _public_raw(dev_private_key(org_id))


def is_development_authority_key(public_key: Ed25519PublicKey | bytes | str) -> bool:
    """True when `public_key` is the derivable development directory authority key."""
    return _raw(public_key) == _public_raw(dev_authority_key())
