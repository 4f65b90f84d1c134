"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519, and tlog checkpoints
(https://c2sp.org/tlog-checkpoint) as their text. Pure: bytes in, bytes out, no I/O.

* key id (the "key hash") = first 4 bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key);
* verifier key = ``<name>+<8 hex digits of the key id>+<base64(0x01 || public key)>``;
* signer key (the Go ``golang.org/x/mod/sumdb/note`` format, also our key file) =
  ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || 32-byte seed)>``;
* a signed note = text (ending in a newline) + a blank line + signature lines
  ``— <name> <base64(key id || 64-byte Ed25519 signature of the text)>`` (U+2014 EM DASH, a space);
* a checkpoint text = origin line, decimal tree size line, base64 root hash line, then optional
  extension lines. cep-bus writes one, ``time 2026-12-07T10:00:00Z`` (UTC, to the second): when the log
  signed the checkpoint, inside the signature, so that a verifier can tell an old checkpoint from a fresh
  one (`Checkpoint.signed_at_ms`). A checkpoint without it (signed before the line existed) still reads.
  The line does not start with the em dash, so that no reader takes it for a signature line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash, space


#: The checkpoint extension line that carries its signing time, and the time's format (UTC, seconds).
TIME_PREFIX = "time "
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed or does not verify; the message says which."""


def time_extension(at_ms: int) -> str:
    """The extension line saying a checkpoint was signed at `at_ms` (Unix ms; kept to the second)."""
    return TIME_PREFIX + datetime.fromtimestamp(at_ms // 1000, UTC).strftime(_TIME_FORMAT)


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not _valid_name(parts[0]) or len(parts[1]) != 8:
            raise NoteError("verifier key must look like name+8hexdigits+base64key")
        name, hex_id, encoded = parts
        try:
            kid = bytes.fromhex(hex_id)
        except ValueError as exc:
            raise NoteError("verifier key id is not hex") from exc
        material = _b64decode(encoded, "verifier key")
        if len(material) != 33 or material[0] != ALG_ED25519:
            raise NoteError("verifier key is not an Ed25519 (type 0x01) key")
        if key_id(name, material[1:]) != kid:
            raise NoteError("verifier key id does not match its name and key")
        return cls(name, kid, material[1:])

    def __str__(self) -> str:
        material = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        if not _valid_name(name):
            raise NoteError(f"invalid key name {name!r}: non-empty, no spaces, no '+'")
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not _valid_name(parts[2]):
            raise NoteError("signer key must look like PRIVATE+KEY+name+8hexdigits+base64key")
        material = _b64decode(parts[4], "signer key")
        if len(material) != 33 or material[0] != ALG_ED25519:
            raise NoteError("signer key is not an Ed25519 (type 0x01) key")
        signer = cls(parts[2], Ed25519PrivateKey.from_private_bytes(material[1:]))
        if signer.verifier().key_id.hex() != parts[3].lower():
            raise NoteError("signer key id does not match its name and key")
        return signer

    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def verifier(self) -> Verifier:
        pub = self.public_key()
        return Verifier(self.name, key_id(self.name, pub), pub)

    def __str__(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        material = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier().key_id.hex()}+{material}"

    def sign(self, text: str) -> str:
        """The signed note for `text` (which must end in a newline and hold no blank line)."""
        if not text.endswith("\n") or "\n\n" in text:
            raise NoteError("note text must end with a newline and contain no blank line")
        signature = self.private_key.sign(text.encode())
        blob = base64.b64encode(self.verifier().key_id + signature).decode()
        return f"{text}\n{SIG_PREFIX}{self.name} {blob}\n"


def open_note(note: str, verifier: Verifier) -> str:
    """The text of `note` if it carries a valid signature by `verifier`; NoteError naming what is wrong.

    Lines signed by other keys are ignored (a note may carry witnesses' cosignatures); a line that claims
    our key (same name and key id) but does not verify rejects the note, as the spec requires.
    """
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("malformed note: no blank line before the signatures")
    text, signatures = note[: split + 1], note[split + 2 :]
    for line in signatures.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line[:40]!r}")
        name, _, blob = line[len(SIG_PREFIX) :].partition(" ")
        raw = _b64decode(blob, "signature")
        if len(raw) < 5:
            raise NoteError("signature line too short")
        if name != verifier.name or raw[:4] != verifier.key_id:
            continue
        if not verifier.verify(text.encode(), raw[4:]):
            raise NoteError(f"the signature by {name} does not verify: the note was altered or forged")
        return text
    raise NoteError(f"no signature by the key {verifier.name}+{verifier.key_id.hex()}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    def signed_at_ms(self) -> int | None:
        """When the log signed this checkpoint (Unix ms, to the second), from its `time` extension line,
        which the signature covers; None for a checkpoint signed before cep-bus wrote the line.
        NoteError for a malformed time or more than one."""
        found = [line[len(TIME_PREFIX) :] for line in self.extensions if line.startswith(TIME_PREFIX)]
        if not found:
            return None
        if len(found) > 1:
            raise NoteError("checkpoint carries more than one time line")
        try:
            if not _TIME.fullmatch(found[0]):
                raise ValueError(found[0])
            moment = datetime.strptime(found[0], _TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise NoteError(f"checkpoint time line {found[0][:40]!r} is not YYYY-MM-DDTHH:MM:SSZ") from None
        return int(moment.timestamp()) * 1000

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint must have an origin, a size and a root hash line")
        origin, size_line, root_line, *extensions = lines[:-1]
        if not origin or not size_line.isdigit() or (size_line != "0" and size_line.startswith("0")):
            raise NoteError(f"malformed checkpoint origin or size line {size_line!r}")
        root = _b64decode(root_line, "checkpoint root hash")
        if len(root) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size_line), root, tuple(extensions))


def open_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """Verify the signature, then parse; the origin must be the one expected (default: the key name)."""
    checkpoint = Checkpoint.parse(open_note(note, verifier))
    expected = origin or verifier.name
    if checkpoint.origin != expected:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not the expected {expected!r}")
    return checkpoint
