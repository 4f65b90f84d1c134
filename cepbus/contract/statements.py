"""Statements: every event on the bus is signed by its author, over bytes the contract defines.

**What is signed.** An event's *statement* is its Avro single-object encoding `S` (`C3 01`, the
CRC-64-AVRO fingerprint of its writer schema, the Avro body): exactly what a producer sends in
single-object framing; a message in Confluent framing carries the same body, and a consumer reads `S`
back by swapping the 5-byte header for the 10-byte one (`codec.single_object`). Its digest is

    d = SHA-256("cep-bus/statement/v1" || 0x00 || S)

**How it is signed.** A producer signs the statements it sends together as one batch of n >= 1, in the
order it sends them: leaf i is `SHA-256(0x00 || d_i)`, the batch's root R is the RFC 9162 Merkle tree
hash of the leaves (n = 1: R is that one leaf), and the signature is Ed25519 over

    "cep-bus/statement-batch/v1" || 0x00 || n (8 bytes, big-endian) || R

with the producer's key from the signed directory. One signature covers a batch, so signing and
verifying cost one Ed25519 operation per batch (and two SHA-256 plus a path of them per event); a
consumer that has verified a root checks the other events of its batch by hashing alone.

**Where it travels.** In the Kafka header `cepbus-signature` of each message, outside the Avro body (so
the signed bytes are the message's own bytes, with no re-encoding), as compact JSON:

    {"v":1,"key":"<directory key id>","sig":"<base64 of 64 bytes>","n":<n>,"i":<i>,"path":"<base64>"}

where `path` is leaf i's RFC 9162 inclusion proof in the batch, its 32-byte hashes concatenated leaf
side first, in base64 (empty when n = 1). The ledger keeps the
signature and the digest in each leaf, so an auditor checks who said what offline; a dead letter keeps
the original's header, so a replay carries the author's own signature.

**Who may sign what** is not this module's: `cepbus.reference.authorship` resolves the key in the
directory (the organisation it belongs to, valid when the bus recorded the event) and checks that the
signer is the event's producer and every field naming who acts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cepbus.auditlog import merkle

STATEMENT_TAG = b"cep-bus/statement/v1\x00"
BATCH_TAG = b"cep-bus/statement-batch/v1\x00"
#: The largest batch a signature may cover (a path of at most 16 hashes).
MAX_BATCH = 1 << 16
#: The header's largest size: a path of 16 hashes in base64 and the rest fit well below.
MAX_HEADER_BYTES = 2048
#: How many statements the bus's signers put under one signature. Any batch size up to `MAX_BATCH`
#: verifies; the signers cut theirs at 16: a path of at most 4 hashes keeps each message's header near
#: 300 bytes (a batch of 1,000 would carry 10 hashes, about 560 bytes, on every message and in every
#: ledger leaf), for one Ed25519 signature per 16 events and one verification per 16 on each reader.
SIGNING_CHUNK = 16
_SIGNATURE_BYTES = 64
#: A directory key id (`cepbus.trust.keys.key_id`): 16 lowercase hex characters.
KEY_ID_REGEX = re.compile(r"^[0-9a-f]{16}$")
#: The header exactly as `StatementSignature.header` writes it (what the bus's signers send): read
#: without a JSON parser; any other valid JSON form of the same fields goes through `json.loads`.
_COMPACT_HEADER = re.compile(
    rb'^\{"v":1,"key":"([0-9a-f]{16})","sig":"([A-Za-z0-9+/]{86}==)","n":(0|[1-9][0-9]{0,5}),'
    rb'"i":(0|[1-9][0-9]{0,5}),"path":"([A-Za-z0-9+/]*={0,2})"\}$'
)


class StatementError(ValueError):
    """A signature header that cannot be one (missing, malformed, out of bounds); the message is one
    line and `reason` a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def statement_digest(single_object: bytes) -> bytes:
    """d: what an author signs of one event (its single-object bytes, tagged)."""
    return hashlib.sha256(STATEMENT_TAG + single_object).digest()


def signed_message(size: int, root: bytes) -> bytes:
    """The exact bytes an author's key signs for a batch of `size` statements whose tree has `root`."""
    return BATCH_TAG + size.to_bytes(8, "big") + root


@dataclass(frozen=True)
class StatementSignature:
    """One message's signature: the author's key id and its signature of the batch, and where in the
    batch this statement is (`index` of `size`, with its inclusion `path`)."""

    key_id: str
    signature: bytes
    size: int = 1
    index: int = 0
    path: tuple[bytes, ...] = ()

    def root(self, digest: bytes) -> bytes:
        """The batch root this statement's digest and path lead to; StatementError if they cannot."""
        try:
            return merkle.root_from_inclusion(merkle.leaf_hash(digest), self.index, self.size, self.path)
        except merkle.ProofError as exc:
            raise StatementError("bad_signature", f"inclusion path: {exc}") from None

    def verify(self, digest: bytes, key: Ed25519PublicKey) -> bytes:
        """The batch root when `key` signed it and this statement is in it; StatementError otherwise."""
        return self.verify_root(self.root(digest), key)

    def verify_root(self, root: bytes, key: Ed25519PublicKey) -> bytes:
        """`root` when `key` signed the batch it is the root of (`root` as `self.root` gave it)."""
        try:
            key.verify(self.signature, signed_message(self.size, root))
        except InvalidSignature:
            raise StatementError("bad_signature", f"not signed by key {self.key_id}") from None
        return root

    def header(self) -> bytes:
        """The `cepbus-signature` header value (compact JSON: key ids and base64 need no escaping)."""
        signature = base64.b64encode(self.signature).decode()
        path = base64.b64encode(b"".join(self.path)).decode()
        return (
            f'{{"v":1,"key":"{self.key_id}","sig":"{signature}","n":{self.size},"i":{self.index},'
            f'"path":"{path}"}}'
        ).encode()

    @classmethod
    def parse(cls, raw: bytes | None) -> StatementSignature:
        """The signature a header carries; StatementError (`unsigned`, `malformed_signature`) otherwise."""
        if not raw:
            raise StatementError("unsigned", "no cepbus-signature header")
        if len(raw) > MAX_HEADER_BYTES:
            raise StatementError(
                "malformed_signature", f"header of {len(raw)} bytes (at most {MAX_HEADER_BYTES})"
            )
        compact = _COMPACT_HEADER.match(raw)
        if compact is not None:
            # the pattern fixed the key id, the signature's length (86 base64 characters: 64 bytes)
            # and the alphabet: the numbers and the path are checked as for any other form
            key_id, sig, size, index, path = compact.groups()
            try:
                hashes = binascii.a2b_base64(path, strict_mode=True)
            except binascii.Error:
                raise StatementError("malformed_signature", "path: not base64") from None
            try:
                return cls._checked(key_id.decode(), binascii.a2b_base64(sig), int(size), int(index), hashes)
            except ValueError as exc:
                raise StatementError("malformed_signature", f"{type(exc).__name__}: {exc}"[:200]) from None
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise StatementError("malformed_signature", "the header is not JSON") from None
        if not isinstance(document, dict) or document.get("v") != 1:
            raise StatementError("malformed_signature", "not a version 1 statement signature")
        try:
            return cls._from_document(document)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise StatementError("malformed_signature", f"{type(exc).__name__}: {exc}"[:200]) from None

    @classmethod
    def _from_document(cls, document: dict[str, object]) -> StatementSignature:
        key_id, size, index, path = document["key"], document["n"], document["i"], document["path"]
        if not isinstance(key_id, str) or not KEY_ID_REGEX.match(key_id):
            raise ValueError("key: not a key id")
        if type(size) is not int or type(index) is not int:
            raise ValueError("n, i: integers")
        if not isinstance(path, str):
            raise ValueError("path: the base64 of the concatenated hashes")
        signature = base64.b64decode(str(document["sig"]), validate=True)
        return cls._checked(key_id, signature, size, index, base64.b64decode(path, validate=True))

    @classmethod
    def _checked(
        cls, key_id: str, signature: bytes, size: int, index: int, hashes: bytes
    ) -> StatementSignature:
        """The signature of these parts, whichever form the header had; ValueError naming the bad one."""
        if not 1 <= size <= MAX_BATCH:
            raise ValueError(f"n: a batch size from 1 to {MAX_BATCH}")
        if not 0 <= index < size:
            raise ValueError("i: an index in the batch")
        if len(signature) != _SIGNATURE_BYTES:
            raise ValueError(f"sig: {len(signature)} bytes, an Ed25519 signature is 64")
        if len(hashes) % 32 or len(hashes) > 16 * 32:
            raise ValueError("path: at most 16 hashes of 32 bytes")
        return cls(
            key_id, signature, size, index, tuple([hashes[k : k + 32] for k in range(0, len(hashes), 32)])
        )


@dataclass(frozen=True)
class StatementSigner:
    """An author's signing key: its organisation, its directory key id, its private key."""

    org_id: str
    key_id: str
    key: Ed25519PrivateKey

    def sign(self, statements: Sequence[bytes], chunk: int = SIGNING_CHUNK) -> list[StatementSignature]:
        """The signatures of these single-object statements, in the order they will be sent: one per
        consecutive `chunk` of them (`SIGNING_CHUNK`; at most `MAX_BATCH`)."""
        if not statements:
            return []
        chunk = max(1, min(chunk, MAX_BATCH))
        if len(statements) > chunk:
            return [
                signature
                for start in range(0, len(statements), chunk)
                for signature in self._sign_batch(statements[start : start + chunk])
            ]
        return self._sign_batch(statements)

    def _sign_batch(self, statements: Sequence[bytes]) -> list[StatementSignature]:
        leaves = [merkle.leaf_hash(statement_digest(s)) for s in statements]
        paths: list[list[bytes]]
        if len(leaves) == 1:
            root, paths = leaves[0], [[]]
        else:
            root, paths = merkle.batch_proofs(leaves)
        signature = self.key.sign(signed_message(len(leaves), root))
        return [
            StatementSignature(self.key_id, signature, len(leaves), i, tuple(path))
            for i, path in enumerate(paths)
        ]


__all__ = [
    "BATCH_TAG",
    "MAX_BATCH",
    "SIGNING_CHUNK",
    "STATEMENT_TAG",
    "StatementError",
    "StatementSignature",
    "StatementSigner",
    "signed_message",
    "statement_digest",
]
