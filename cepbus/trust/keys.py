"""Key files and key ids: an organisation's (or the directory authority's) private key, and the
short ids that name public keys in the directory and in the pinned authority key.

- Private keys are PEM PKCS#8, unencrypted, created with mode 0600 in one step (`O_CREAT | O_EXCL`)
  and never overwritten: a second `write_private_key` to the same path fails rather than destroying
  the only copy of a key whose public half is already in a directory. In production a key file others
  may read is refused when loaded (`cepbus.trust.keyfiles`).
- `key_id(org_id, raw)` is 16 hex chars of SHA-256 over `cep-bus/partner-key/v1\\n`, the organisation
  id, `\\n` and the 32 raw bytes of the public key: it binds the key to its organisation.
- The directory authority's public key is pinned as one string,
  `cep-bus-directory+<16 hex key id>+<base64 raw public key>` (its key id uses the tag
  `cep-bus/directory-authority-key/v1\\n`), set apart from the software in
  `CEPBUS_DIRECTORY_AUTHORITY_KEY`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cepbus.trust.keyfiles import read_key_bytes

PARTNER_KEY_TAG = b"cep-bus/partner-key/v1\n"
#: The tag of an organisation's encryption (X25519) key ids: a signing and an encryption key never share
#: an id, even over the same 32 bytes.
ENCRYPTION_KEY_TAG = b"cep-bus/partner-encryption-key/v1\n"
AUTHORITY_KEY_TAG = b"cep-bus/directory-authority-key/v1\n"
AUTHORITY_PREFIX = "cep-bus-directory"
KEY_ID = r"^[0-9a-f]{16}$"
_KEY_ID = re.compile(KEY_ID)


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key (of a private key's public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(org_id: str, public_raw: bytes) -> str:
    """The id of an organisation's public key: 16 hex chars of SHA-256 over the tag, the organisation
    id and the raw key (see the module doc)."""
    if len(public_raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(public_raw)}")
    return hashlib.sha256(PARTNER_KEY_TAG + org_id.encode() + b"\n" + public_raw).hexdigest()[:16]


def encryption_key_id(org_id: str, public_raw: bytes) -> str:
    """The id of an organisation's X25519 encryption key (16 hex chars), as `key_id` with its own tag."""
    if len(public_raw) != 32:
        raise ValueError(f"an X25519 public key is 32 bytes, got {len(public_raw)}")
    return hashlib.sha256(ENCRYPTION_KEY_TAG + org_id.encode() + b"\n" + public_raw).hexdigest()[:16]


def authority_key_id(public_raw: bytes) -> str:
    """The id of a directory authority key (16 hex chars)."""
    if len(public_raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(public_raw)}")
    return hashlib.sha256(AUTHORITY_KEY_TAG + public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class AuthorityKey:
    """A directory authority's public key, as pinned."""

    key_id: str
    raw: bytes

    @property
    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    @classmethod
    def of(cls, key: Ed25519PrivateKey | Ed25519PublicKey) -> AuthorityKey:
        raw = raw_public_key(key)
        return cls(authority_key_id(raw), raw)

    def pinned(self) -> str:
        return format_authority_key(self.raw)

    def __str__(self) -> str:
        return self.pinned()


def format_authority_key(key: Ed25519PrivateKey | Ed25519PublicKey | bytes) -> str:
    """The pinned form of an authority key: `cep-bus-directory+<key id>+<base64 raw key>`."""
    raw = key if isinstance(key, bytes) else raw_public_key(key)
    return f"{AUTHORITY_PREFIX}+{authority_key_id(raw)}+{base64.b64encode(raw).decode()}"


def parse_authority_key(text: str) -> AuthorityKey:
    """Parse a pinned authority key; ValueError saying what is wrong with it."""
    text = text.strip()
    parts = text.split("+", 2)  # base64 may itself contain '+'
    if len(parts) != 3 or parts[0] != AUTHORITY_PREFIX:
        raise ValueError(
            f"a pinned directory authority key reads {AUTHORITY_PREFIX}+<16 hex key id>+<base64 public key>,"
            f" got {text[:40]!r}"
        )
    _, kid, b64 = parts
    if not _KEY_ID.match(kid):
        raise ValueError(f"the key id of a pinned authority key is 16 lowercase hex chars, got {kid!r}")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the public key of a pinned authority key is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"the public key of a pinned authority key is 32 bytes, got {len(raw)}")
    if authority_key_id(raw) != kid:
        raise ValueError(
            f"the pinned authority key's id {kid} does not match its public key (expected"
            f" {authority_key_id(raw)}): the string was altered or truncated"
        )
    return AuthorityKey(kid, raw)


def load_private_key(path: Path, *, production: bool | None = None) -> Ed25519PrivateKey:
    """An organisation's own key from a PEM file (PKCS#8, unencrypted); in production (`CEPBUS_ENV`, or
    `production`) ValueError (`KeyFileError`) for a file others may read."""
    key = serialization.load_pem_private_key(read_key_bytes(path, "private key", production=production), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_encryption_key(path: Path, *, production: bool | None = None) -> X25519PrivateKey:
    """An organisation's own encryption (X25519) key from a PEM file (PKCS#8, unencrypted), checked as
    `load_private_key` checks a signing key."""
    key = serialization.load_pem_private_key(read_key_bytes(path, "private key", production=production), None)
    if not isinstance(key, X25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an X25519 private key")
    return key


def write_private_key(key: Ed25519PrivateKey | X25519PrivateKey, path: Path) -> None:
    """Write a key as PEM into a new file created with mode 0600 (never readable by others, not even
    for an instant); FileExistsError if `path` exists: a key file is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
