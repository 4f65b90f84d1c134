"""The referral directory: every organisation a referral can be addressed to, with its inbox topic and
the Ed25519 public keys it signs its statements with, over time.

It joins the CEP operators of the reference data (`organisations.json`) with the local partners of the
directory: Transitions Pro (one per region), the 11 OPCO (national), SPRO contact points, and
*examples* of training organisations and health-social partners (flagged `example: true`).

Format `cep-bus-directory/2`, one JSON document:

    {"signed": {"format": "cep-bus-directory/2", "version": "2026.1", "development": false,
                "issued_at": "2026-03-01T00:00:00Z", "source": "...", "partners": [...],
                "keys": [{"org_id", "key_id", "public_key", "not_before", "not_after", "revoked_at"}]},
     "signatures": [{"key_id": "<authority key id>", "signature": "<base64 Ed25519>"}]}

The directory authority signs the canonical bytes of `signed` (`canonical_bytes`: sorted keys, no
whitespace, UTF-8, no floats). Its public key is pinned apart from the software
(`CEPBUS_DIRECTORY_AUTHORITY_KEY`, the root of trust, as in TUF or Sigstore); the directory file is
configuration too (`CEPBUS_DIRECTORY_PATH`). Each organisation has one key or more: a rotation adds a
key with a later `not_before` and closes the old one with `not_after`; a compromised key gets
`revoked_at`. A statement signature is checked against the key valid *when the bus recorded the
event* (`cepbus.reference.authorship`, with `key_by_id` and `DirectoryKey.valid_at`), so history stays
verifiable after a rotation while an old key cannot sign anything new.

Everything is validated at load: an organisation without a key, a key that is not an Ed25519 public
key or whose id does not match, an OPCO list that is not the 11 OPCO, a signature that does not verify
with the pinned key... fails loudly (`DirectoryError`). The packaged `data/directory.json` is an
example with INSECURE development keys (`cepbus.trust.development`), for the demo and the tests;
`directory_trust_problems` says so, and production refuses it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from cepbus.contract.models import (
    CEP_OPERATOR_KINDS,
    ORG_ID,
    REGION_CODE,
    OrganisationKind,
)
from cepbus.contract.topics import referral_inbox, referral_rejections
from cepbus.reference import ReferenceData, load_reference
from cepbus.trust.development import (
    is_development_authority_key,
    is_development_encryption_key,
    is_development_key,
)
from cepbus.trust.keys import (
    KEY_ID,
    AuthorityKey,
    encryption_key_id,
    key_id,
    parse_authority_key,
    raw_public_key,
)
from cepbus.trust.modes import TrustProblem
from cepbus.trust.settings import TrustSettings
from cepbus.untrusted_json import (
    DuplicateKeys,
    MalformedJson,
    UnreadableInput,
    loads_strict,
    one_line,
    read_capped,
)

FORMAT = "cep-bus-directory/3"

#: The 11 opérateurs de compétences approved since 2019 (arrêtés d'agrément).
OPCO_NAMES = frozenset(
    {
        "AFDAS",
        "AKTO",
        "ATLAS",
        "Constructys",
        "OCAPIAT",
        "OPCO 2i",
        "OPCO Commerce",
        "OPCO EP",
        "OPCO Mobilités",
        "OPCO Santé",
        "Uniformation",
    }
)
#: Kinds whose entries are only examples, never real organisations.
EXAMPLE_KINDS = frozenset({OrganisationKind.TRAINING, OrganisationKind.HEALTH_SOCIAL})
#: Kinds with exactly one entry per region.
ONE_PER_REGION_KINDS = frozenset({OrganisationKind.TRANSITIONS_PRO, OrganisationKind.SPRO})

_PACKAGED = "the packaged example directory"

#: A directory file larger than this is refused unread (a national directory is a few megabytes).
MAX_DOCUMENT_BYTES = 64 << 20
#: Deepest JSON nesting a directory file may have: a key entry nests 4 deep (document, body, list, entry).
MAX_DEPTH = 16


class DirectoryError(ValueError):
    """The directory is inconsistent, its signature does not verify, or an organisation is not in it.
    The message is one line."""


def format_time(at: datetime) -> str:
    """A UTC instant as the directory writes it: ISO-8601 with a `Z`."""
    if at.tzinfo is None:
        raise ValueError(f"{at.isoformat()} has no time zone; the directory uses UTC instants")
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO-8601 instant with its offset (`2026-03-01T00:00:00Z`), in UTC; ValueError otherwise."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 time (e.g. 2026-03-01T00:00:00Z)") from None
    if at.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: give a UTC time, e.g. 2026-03-01T00:00:00Z")
    return at.astimezone(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartnerEntry(_Frozen):
    """A local partner as written in the directory; `region_code` is None for a national one."""

    org_id: str = Field(pattern=ORG_ID)
    kind: OrganisationKind
    name: str = Field(min_length=1)
    region_code: str | None = Field(default=None, pattern=REGION_CODE)
    website: str | None = None
    example: bool = False
    note: str | None = None


class _VersionedKey(_Frozen):
    """A public key of an organisation and when it is valid: from `not_before` (included) to `not_after`
    (excluded, None: open), and never from `revoked_at` on. Its id binds it to its organisation
    (`_id_of`); `_kind` names the 32-byte key it holds."""

    _kind: ClassVar[str] = "Ed25519"

    org_id: str = Field(pattern=ORG_ID)
    key_id: str = Field(pattern=KEY_ID)
    public_key: str
    not_before: AwareDatetime
    not_after: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None

    @classmethod
    def _id_of(cls, org_id: str, raw: bytes) -> str:
        return key_id(org_id, raw)

    @field_validator("not_before", "not_after", "revoked_at")
    @classmethod
    def _utc(cls, at: datetime | None) -> datetime | None:
        return None if at is None else at.astimezone(UTC)

    @field_validator("public_key")
    @classmethod
    def _parses(cls, text: str) -> str:
        _decode_public_key(text, cls._kind)
        return text

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        expected = self._id_of(self.org_id, self.raw)
        if self.key_id != expected:
            raise ValueError(
                f"key id {self.key_id} of {self.org_id} does not match its public key ({expected})"
            )
        if self.not_after is not None and self.not_after <= self.not_before:
            raise ValueError(f"key {self.key_id} of {self.org_id}: not_after is not after not_before")
        return self

    @property
    def raw(self) -> bytes:
        return _decode_public_key(self.public_key, self._kind)

    def valid_at(self, at: datetime) -> bool:
        """True when the key may be used at `at` (an aware datetime)."""
        _require_aware(at)
        return (
            self.not_before <= at
            and (self.not_after is None or at < self.not_after)
            and (self.revoked_at is None or at < self.revoked_at)
        )


class DirectoryKey(_VersionedKey):
    """One signing (Ed25519) key of an organisation and when it may sign."""

    def key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def to_json(self) -> dict[str, Any]:
        """The entry as the directory writes it."""
        return key_entry(self.org_id, self.raw, self.not_before, self.not_after, self.revoked_at)


def key_entry(
    org_id: str,
    public: Ed25519PrivateKey | Ed25519PublicKey | bytes,
    not_before: datetime,
    not_after: datetime | None = None,
    revoked_at: datetime | None = None,
) -> dict[str, Any]:
    """A directory key entry (JSON-ready) for an organisation's public key."""
    raw = public if isinstance(public, bytes) else raw_public_key(public)
    return {
        "org_id": org_id,
        "key_id": key_id(org_id, raw),
        "public_key": base64.b64encode(raw).decode(),
        "not_before": format_time(not_before),
        "not_after": None if not_after is None else format_time(not_after),
        "revoked_at": None if revoked_at is None else format_time(revoked_at),
    }


class EncryptionKey(_VersionedKey):
    """One X25519 public key of an organisation, to which referral contacts are sealed
    (`cepbus.contract.contact`); valid, rotated and revoked as a signing key is: new contacts are sealed
    to the newest key valid now, and none to a key revoked or expired."""

    _kind: ClassVar[str] = "X25519"

    @classmethod
    def _id_of(cls, org_id: str, raw: bytes) -> str:
        return encryption_key_id(org_id, raw)

    def key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)

    def to_json(self) -> dict[str, Any]:
        """The entry as the directory writes it."""
        return encryption_key_entry(self.org_id, self.raw, self.not_before, self.not_after, self.revoked_at)


def encryption_key_entry(
    org_id: str,
    public: X25519PrivateKey | X25519PublicKey | bytes,
    not_before: datetime,
    not_after: datetime | None = None,
    revoked_at: datetime | None = None,
) -> dict[str, Any]:
    """A directory encryption key entry (JSON-ready) for an organisation's X25519 public key."""
    if isinstance(public, X25519PrivateKey):
        public = public.public_key()
    raw = public if isinstance(public, bytes) else public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "org_id": org_id,
        "key_id": encryption_key_id(org_id, raw),
        "public_key": base64.b64encode(raw).decode(),
        "not_before": format_time(not_before),
        "not_after": None if not_after is None else format_time(not_after),
        "revoked_at": None if revoked_at is None else format_time(revoked_at),
    }


class DirectoryEntry(_Frozen):
    """One organisation that can receive referrals and sign status updates (its keys:
    `Directory.keys_of`)."""

    org_id: str
    kind: OrganisationKind
    name: str
    region_code: str | None
    example: bool = False

    @property
    def inbox_topic(self) -> str:
        return referral_inbox(self.org_id).name

    @property
    def rejections_topic(self) -> str:
        return referral_rejections(self.org_id).name


#: What each of the bus's own services does: the producer kinds of the topic catalog.
ServiceRole = Literal["router", "notifier", "ledger", "deadletters"]


class ServiceEntry(_Frozen):
    """One of the bus's own services, which signs what it emits with its keys in this directory."""

    org_id: str = Field(pattern=ORG_ID)
    role: ServiceRole
    name: str = Field(min_length=1)


class _SignedBody(_Frozen):
    format: Literal["cep-bus-directory/3"]
    version: str = Field(min_length=1)
    serial: int = Field(ge=1)  # monotonic: a service refuses a version older than the newest it has seen
    development: StrictBool
    issued_at: AwareDatetime
    expires_at: AwareDatetime  # production refuses an expired directory
    source: str | None = None
    partners: list[PartnerEntry]
    services: list[ServiceEntry]
    keys: list[DirectoryKey]
    # absent from directories written before issue #24: then no organisation can receive a contact
    encryption_keys: list[EncryptionKey] = Field(default_factory=list)

    @model_validator(mode="after")
    def _expires_after_issue(self) -> _SignedBody:
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


class _Signature(_Frozen):
    key_id: str = Field(pattern=KEY_ID)
    signature: str

    @field_validator("signature")
    @classmethod
    def _is_signature(cls, text: str) -> str:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a signature is base64") from None
        if len(raw) != 64:
            raise ValueError(f"an Ed25519 signature is 64 bytes, got {len(raw)}")
        return text


def _decode_public_key(text: str, kind: str = "Ed25519") -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a public key is the base64 of its 32 raw bytes") from None
    if len(raw) != 32:
        raise ValueError(f"an {kind} public key is 32 bytes, got {len(raw)}")
    return raw


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a directory time must be timezone-aware (UTC)")


# --- the document: reading, canonical bytes, signatures -------------------------------------------


def read_document(data: bytes | str) -> dict[str, Any]:
    """Parse a directory file's JSON (strict UTF-8 when bytes, nesting bounded); DirectoryError on bad
    JSON, duplicate keys (a signed document must be unambiguous) or a non-object."""
    try:
        document = loads_strict(data, max_depth=MAX_DEPTH)
    except DuplicateKeys as exc:
        raise DirectoryError(
            f"duplicate JSON key {exc.keys[0]!r}: a signed document must be unambiguous"
        ) from None
    except MalformedJson as exc:
        raise DirectoryError(str(exc)) from None
    if not isinstance(document, dict):
        raise DirectoryError("a directory is a JSON object")
    return document


def split_document(document: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The signed body and the signatures of a document; a bare body (no `signed`) has none."""
    if "public_keys" in document and "signed" not in document:
        raise DirectoryError(
            "directory format 1 (`public_keys`) is no longer read: regenerate it in format"
            f" {FORMAT} (scripts/generate_directory.py, cep-bus keys generate / directory add-key)"
        )
    inner = document.get("signed", document)
    body_format = inner.get("format") if isinstance(inner, Mapping) else None
    if body_format == "cep-bus-directory/2":
        raise DirectoryError(
            "directory format 2 has no serial, expiry nor service keys: the authority re-signs it in"
            f" {FORMAT} (`cep-bus directory upgrade`, then `cep-bus directory sign`)"
        )
    if "signed" not in document:
        if "format" not in document:
            raise DirectoryError(f'not a directory: neither a "signed" body nor a "format" of {FORMAT}')
        return dict(document), []
    if extra := sorted(set(document) - {"signed", "signatures"}):
        raise DirectoryError(f"unexpected top-level fields {', '.join(extra)} (only signed, signatures)")
    body, signatures = document["signed"], document.get("signatures", [])
    if not isinstance(body, dict):
        raise DirectoryError('"signed" must be a JSON object')
    if not isinstance(signatures, list) or not all(isinstance(s, dict) for s in signatures):
        raise DirectoryError('"signatures" must be a list of {"key_id", "signature"} objects')
    return dict(body), [dict(s) for s in signatures]


def _refuse_floats(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise DirectoryError(f"{where}: floats are not allowed in a signed directory (got {value!r})")
    if isinstance(value, dict):
        for name, item in value.items():
            _refuse_floats(item, f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_floats(item, f"{where}[{index}]")


def canonical_bytes(signed: Mapping[str, Any]) -> bytes:
    """The bytes the directory authority signs: sorted keys, no whitespace, UTF-8; no floats (their
    text form is not canonical across languages), DirectoryError if there is one."""
    _refuse_floats(signed, "signed")
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_document(
    signed: Mapping[str, Any], key: Ed25519PrivateKey, signatures: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The document of `signed` with `key`'s signature, keeping the other authorities' `signatures`
    (a previous signature by the same key is replaced)."""
    authority = AuthorityKey.of(key)
    signature = base64.b64encode(key.sign(canonical_bytes(signed))).decode()
    others = [dict(s) for s in signatures if s.get("key_id") != authority.key_id]
    return {
        "signed": dict(signed),
        "signatures": [*others, {"key_id": authority.key_id, "signature": signature}],
    }


def check_signature(
    signed: Mapping[str, Any], signatures: Sequence[Mapping[str, Any]], authority: AuthorityKey
) -> None:
    """DirectoryError unless one of `signatures` is `authority`'s valid signature of `signed`."""
    message = canonical_bytes(signed)
    parsed: list[_Signature] = []
    for index, entry in enumerate(signatures):
        try:
            parsed.append(_Signature.model_validate(entry))
        except ValidationError as exc:
            raise DirectoryError(f"signature {index}: {one_line(exc, limit=6)}") from None
    if not parsed:
        raise DirectoryError(f"the directory is unsigned; the pinned authority key is {authority.key_id}")
    mine = [s for s in parsed if s.key_id == authority.key_id]
    if not mine:
        others = ", ".join(s.key_id for s in parsed)
        raise DirectoryError(
            f"the directory is not signed by the pinned authority key {authority.key_id} (signed by {others})"
        )
    for candidate in mine:
        try:
            authority.public_key.verify(base64.b64decode(candidate.signature), message)
        except InvalidSignature:
            continue
        return
    raise DirectoryError(
        f"the signature of authority key {authority.key_id} does not verify: the signed body was altered"
        " after signing, or the signature is not of this body"
    )


# --- the directory ----------------------------------------------------------------------------------


class Directory:
    """The validated directory, read-only."""

    def __init__(
        self,
        version: str,
        entries: Iterable[DirectoryEntry],
        keys: Iterable[DirectoryKey] = (),
        *,
        development: bool = False,
        issued_at: datetime | None = None,
        source: str | None = None,
        signatures: Sequence[str] = (),
        verified_by: str | None = None,
        serial: int = 0,
        expires_at: datetime | None = None,
        services: Iterable[ServiceEntry] = (),
        document: Mapping[str, Any] | None = None,
        encryption_keys: Iterable[EncryptionKey] = (),
    ) -> None:
        """`document`: the signed document as read (`signed` body and `signatures`); its `digest` is
        the SHA-256 of the body's canonical bytes, what names this version in a service's history and
        in the ledger."""
        self.version = version
        self.serial = serial
        self.document = document
        self.digest = hashlib.sha256(canonical_bytes(document["signed"])).hexdigest() if document else ""
        self.expires_at = expires_at
        self.development = development
        self.issued_at = issued_at
        self.services = {service.org_id: service for service in services}
        self.source = source
        self.signatures = tuple(signatures)  # the key ids of the authorities that signed it
        self.verified_by = verified_by  # the pinned authority key id it was verified with, if any
        self._entries = {entry.org_id: entry for entry in entries}
        self._keys: dict[str, list[DirectoryKey]] = {}
        self._by_id: dict[str, DirectoryKey] = {}
        for key in sorted(keys, key=lambda k: (k.not_before, k.key_id)):
            self._keys.setdefault(key.org_id, []).append(key)
            self._by_id[key.key_id] = key
        self._parsed: dict[str, Ed25519PublicKey] = {}
        self._encryption: dict[str, list[EncryptionKey]] = {}
        self._encryption_by_id: dict[str, EncryptionKey] = {}
        for enc in sorted(encryption_keys, key=lambda k: (k.not_before, k.key_id)):
            self._encryption.setdefault(enc.org_id, []).append(enc)
            self._encryption_by_id[enc.key_id] = enc

    @classmethod
    def build(
        cls,
        reference: ReferenceData,
        document: Mapping[str, Any],
        authority: AuthorityKey | str | None = None,
    ) -> Directory:
        """Validate a document (full, or a bare body: unsigned); with `authority`, its signature too."""
        body, signatures = split_document(document)
        canonical_bytes(body)  # floats are refused, signed or not
        try:
            pinned = parse_authority_key(authority) if isinstance(authority, str) else authority
        except ValueError as exc:
            raise DirectoryError(f"the pinned authority key: {exc}") from None
        if pinned is not None:
            check_signature(body, signatures, pinned)
        try:
            parsed = _SignedBody.model_validate(body)
            signers = [_Signature.model_validate(s).key_id for s in signatures]
        except ValidationError as exc:
            raise DirectoryError(f"invalid directory: {one_line(exc, limit=6)}") from None
        errors: list[str] = []
        operators = reference.organisations()
        ids = [org.org_id for org in operators] + [p.org_id for p in parsed.partners]
        ids += [service.org_id for service in parsed.services]
        if dup := sorted(i for i, n in Counter(ids).items() if n > 1):
            errors.append(f"duplicate organisation ids: {', '.join(dup)}")
        regions = set(reference.regions)
        per_region: Counter[tuple[OrganisationKind, str]] = Counter()
        for partner in parsed.partners:
            if partner.kind in CEP_OPERATOR_KINDS:
                errors.append(f"{partner.org_id}: CEP operators belong in organisations.json")
            if partner.region_code is not None and partner.region_code not in regions:
                errors.append(f"{partner.org_id}: unknown region {partner.region_code}")
            if partner.kind in EXAMPLE_KINDS and not partner.example:
                errors.append(f"{partner.org_id}: {partner.kind} entries are examples and must say so")
            if partner.kind in ONE_PER_REGION_KINDS:
                if partner.region_code is None:
                    errors.append(f"{partner.org_id}: a {partner.kind} is regional")
                else:
                    per_region[(partner.kind, partner.region_code)] += 1
        for kind in sorted(ONE_PER_REGION_KINDS):
            for code in sorted(regions):
                if per_region[(kind, code)] != 1:
                    errors.append(f"region {code} has {per_region[(kind, code)]} {kind}, expected 1")
        opco = {p.name for p in parsed.partners if p.kind == OrganisationKind.OPCO}
        if opco != OPCO_NAMES:
            errors.append(f"OPCO must be the 11 OPCO, differs by {sorted(opco ^ OPCO_NAMES)}")
        keyed = {key.org_id for key in parsed.keys}
        if missing := sorted(set(ids) - keyed):
            errors.append(f"organisations without a key: {', '.join(missing)}")
        if unknown := sorted(keyed - set(ids)):
            errors.append(f"keys of unknown organisations: {', '.join(unknown)}")
        if dup_ids := sorted(k for k, n in Counter(key.key_id for key in parsed.keys).items() if n > 1):
            errors.append(f"duplicate key ids: {', '.join(dup_ids)}")
        owners: dict[str, set[str]] = {}
        for key in parsed.keys:
            owners.setdefault(key.public_key, set()).add(key.org_id)
        if shared := sorted(", ".join(sorted(orgs)) for orgs in owners.values() if len(orgs) > 1):
            errors.append(f"one public key for several organisations: {'; '.join(shared)}")
        if unknown := sorted({key.org_id for key in parsed.encryption_keys} - set(ids)):
            errors.append(f"encryption keys of unknown organisations: {', '.join(unknown)}")
        enc_ids = Counter(key.key_id for key in parsed.encryption_keys)
        if dup_enc := sorted(k for k, n in enc_ids.items() if n > 1):
            errors.append(f"duplicate encryption key ids: {', '.join(dup_enc)}")
        if errors:
            raise DirectoryError("invalid directory: " + "; ".join(errors))
        entries = [
            DirectoryEntry(org_id=o.org_id, kind=o.kind, name=o.name, region_code=o.region_code)
            for o in operators
        ] + [
            DirectoryEntry(
                org_id=p.org_id, kind=p.kind, name=p.name, region_code=p.region_code, example=p.example
            )
            for p in parsed.partners
        ]
        return cls(
            parsed.version,
            entries,
            parsed.keys,
            development=parsed.development,
            issued_at=parsed.issued_at.astimezone(UTC),
            source=parsed.source,
            signatures=signers,
            verified_by=pinned.key_id if pinned is not None else None,
            serial=parsed.serial,
            expires_at=parsed.expires_at.astimezone(UTC),
            services=parsed.services,
            document={"signed": body, "signatures": [dict(s) for s in signatures]},
            encryption_keys=parsed.encryption_keys,
        )

    @property
    def signed(self) -> bool:
        return bool(self.signatures)

    def entries(self) -> list[DirectoryEntry]:
        """Every organisation, by id."""
        return [self._entries[org_id] for org_id in sorted(self._entries)]

    def org_ids(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, org_id: object) -> bool:
        return org_id in self._entries

    def get(self, org_id: str) -> DirectoryEntry:
        try:
            return self._entries[org_id]
        except KeyError:
            raise DirectoryError(f"{org_id!r} is not in the referral directory") from None

    def key_by_id(self, key_id: str) -> DirectoryKey | None:
        """The key with this id, of any organisation or service; None if the directory has none."""
        return self._by_id.get(key_id)

    def encryption_key_of(self, org_id: str, at: datetime | None = None) -> EncryptionKey | None:
        """The organisation's newest encryption key valid at `at` (default: now): the one a new contact
        is sealed to; None when it has none (never listed, expired or revoked)."""
        when = at or datetime.now(UTC)
        valid = [key for key in self._encryption.get(org_id, ()) if key.valid_at(when)]
        return valid[-1] if valid else None

    def encryption_keys_of(self, org_id: str) -> list[EncryptionKey]:
        """The organisation's encryption keys, past, current and future, oldest `not_before` first."""
        return list(self._encryption.get(org_id, ()))

    def all_encryption_keys(self) -> list[EncryptionKey]:
        return [key for org_id in sorted(self._encryption) for key in self._encryption[org_id]]

    def encryption_key_by_id(self, key_id: str) -> EncryptionKey | None:
        return self._encryption_by_id.get(key_id)

    def public_of(self, key: DirectoryKey) -> Ed25519PublicKey:
        """The parsed public key (parsed once per directory)."""
        return self._public(key)

    def expired(self, at: datetime | None = None) -> bool:
        """True once `expires_at` has passed (a directory from before expiries never expires)."""
        return self.expires_at is not None and (at or datetime.now(UTC)) >= self.expires_at

    def all_keys(self) -> list[DirectoryKey]:
        """Every key of every organisation, by organisation then `not_before`."""
        return [key for org_id in sorted(self._keys) for key in self._keys[org_id]]

    def keys_of(self, org_id: str) -> list[DirectoryKey]:
        """The organisation's keys, past, current and future, oldest `not_before` first."""
        self.get(org_id)
        return list(self._keys.get(org_id, ()))

    def keys_valid_at(self, org_id: str, at: datetime) -> list[DirectoryKey]:
        """The organisation's keys that may sign at `at` (aware): not_before <= at < not_after, and
        at < revoked_at when revoked; oldest `not_before` first."""
        _require_aware(at)
        return [key for key in self.keys_of(org_id) if key.valid_at(at)]

    def current_key(self, org_id: str, at: datetime | None = None) -> DirectoryKey:
        """The newest key valid at `at` (default: now); DirectoryError when none is."""
        when = at or datetime.now(UTC)
        valid = self.keys_valid_at(org_id, when)
        if not valid:
            raise DirectoryError(f"{org_id} has no key valid at {format_time(when)}")
        return valid[-1]

    def public_key(self, org_id: str) -> Ed25519PublicKey:
        """The organisation's newest currently valid public key (parsed once); DirectoryError when
        it has none valid now. Checking a signature at its recording time: `cepbus.reference.authorship`."""
        return self._public(self.current_key(org_id))

    def _public(self, key: DirectoryKey) -> Ed25519PublicKey:
        if key.key_id not in self._parsed:
            self._parsed[key.key_id] = key.key()
        return self._parsed[key.key_id]


# --- loading ----------------------------------------------------------------------------------------


def packaged_directory_text() -> str:
    """The packaged example directory (INSECURE development keys), as text."""
    return resources.files("cepbus.reference").joinpath("data", "directory.json").read_text(encoding="utf-8")


def load_directory_from(
    path: Path | str, reference: ReferenceData | None = None, authority_key: AuthorityKey | str | None = None
) -> Directory:
    """Load and validate a directory file, its signature too with `authority_key` (uncached)."""
    try:
        data = read_capped(Path(path), MAX_DOCUMENT_BYTES, "referral directory")
    except UnreadableInput as exc:
        raise DirectoryError(str(exc)) from None
    try:
        return Directory.build(reference or load_reference(), read_document(data), authority_key)
    except DirectoryError as exc:
        raise DirectoryError(f"referral directory {path}: {exc}") from None


def load_directory(settings: TrustSettings | None = None) -> Directory:
    """The directory the settings name (`CEPBUS_DIRECTORY_PATH`, default the packaged example),
    verified against the pinned authority key when there is one (`CEPBUS_DIRECTORY_AUTHORITY_KEY`).
    Cached per (path, authority key); `clear_directory_cache()` forgets."""
    settings = settings or TrustSettings()
    return _load_cached(settings.directory_path, settings.directory_authority_key)


@functools.cache
def _load_cached(path: Path | None, authority_key: str | None) -> Directory:
    try:
        pinned = parse_authority_key(authority_key) if authority_key is not None else None
    except ValueError as exc:
        raise DirectoryError(f"CEPBUS_DIRECTORY_AUTHORITY_KEY: {exc}") from None
    if path is not None:
        return load_directory_from(path, authority_key=pinned)
    try:
        return Directory.build(load_reference(), read_document(packaged_directory_text()), pinned)
    except DirectoryError as exc:
        raise DirectoryError(f"{_PACKAGED}: {exc}") from None


def clear_directory_cache() -> None:
    """Forget the loaded directories (tests that change the settings)."""
    _load_cached.cache_clear()


def directory_trust_problems(
    directory: Directory, settings: TrustSettings | None = None
) -> list[TrustProblem]:
    """What makes this directory untrustworthy in production, each with its fix (for `enforce`)."""
    settings = settings or TrustSettings()
    problems: list[TrustProblem] = []
    if settings.directory_path is None:
        problems.append(
            TrustProblem(
                "the referral directory is the packaged example (INSECURE development keys)",
                "set CEPBUS_DIRECTORY_PATH to the signed directory",
            )
        )
    elif directory.development:
        problems.append(
            TrustProblem(
                f"the referral directory {settings.directory_path} is marked development",
                "set CEPBUS_DIRECTORY_PATH to the signed production directory",
            )
        )
    if settings.directory_authority_key is None:
        problems.append(
            TrustProblem(
                "no directory authority key is pinned, so the directory's signature is not checked",
                "set CEPBUS_DIRECTORY_AUTHORITY_KEY to the authority's cep-bus-directory+... key",
            )
        )
    else:
        try:
            pinned = parse_authority_key(settings.directory_authority_key)
        except ValueError as exc:
            problems.append(TrustProblem(f"the pinned directory authority key is invalid: {exc}", "fix it"))
        else:
            if is_development_authority_key(pinned.raw):
                problems.append(
                    TrustProblem(
                        "the pinned directory authority key is the INSECURE development authority",
                        "pin the real authority's key (cep-bus directory keygen) in"
                        " CEPBUS_DIRECTORY_AUTHORITY_KEY",
                    )
                )
    if not directory.signed:
        problems.append(
            TrustProblem(
                "the referral directory is unsigned",
                "sign it with the authority key (cep-bus directory sign) and pin that key",
            )
        )
    if directory.expired():
        expired_at = format_time(directory.expires_at) if directory.expires_at else "?"
        problems.append(
            TrustProblem(
                f"the referral directory (serial {directory.serial}) expired at {expired_at}",
                "install the authority's current signed directory (CEPBUS_DIRECTORY_PATH)",
            )
        )
    derivable = sorted({k.org_id for k in directory.all_keys() if is_development_key(k.org_id, k.raw)})
    derivable_enc = sorted(
        {k.org_id for k in directory.all_encryption_keys() if is_development_encryption_key(k.org_id, k.raw)}
    )
    if derivable_enc:
        shown = ", ".join(derivable_enc[:5]) + (
            f" and {len(derivable_enc) - 5} more" if len(derivable_enc) > 5 else ""
        )
        problems.append(
            TrustProblem(
                f"{len(derivable_enc)} organisations have a derivable development encryption key in the"
                f" directory ({shown}): anyone opens the contacts sealed to them",
                "replace each with the encryption key the organisation generated and revoke the"
                " development key",
            )
        )
    if derivable:
        shown = ", ".join(derivable[:5]) + (f" and {len(derivable) - 5} more" if len(derivable) > 5 else "")
        problems.append(
            TrustProblem(
                f"{len(derivable)} organisations have a derivable development key in the directory ({shown})",
                "replace each with the key the organisation generated (cep-bus keys generate) and revoke the"
                " development key",
            )
        )
    return problems


__all__ = [
    "FORMAT",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "OPCO_NAMES",
    "Directory",
    "DirectoryEntry",
    "DirectoryError",
    "DirectoryKey",
    "EncryptionKey",
    "PartnerEntry",
    "ServiceEntry",
    "canonical_bytes",
    "check_signature",
    "clear_directory_cache",
    "directory_trust_problems",
    "encryption_key_entry",
    "format_time",
    "key_entry",
    "load_directory",
    "load_directory_from",
    "parse_time",
    "read_document",
    "sign_document",
    "split_document",
]
