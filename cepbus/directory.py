"""The referral directory: every organisation a referral can be addressed to, with its inbox topic and
its Ed25519 public key.

It joins the CEP operators of the reference data (`organisations.json`) with the local partners of
`directory.json`: Transitions Pro (one per region), the 11 OPCO (national), SPRO contact points, and
*examples* of training organisations and health-social partners (flagged `example: true`). The file
is versioned and validated at load: a referral to an organisation without a key, a key that is not
an Ed25519 public key, or an OPCO list that is not the 11 OPCO fails loudly.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cepbus.models import CEP_OPERATOR_KINDS, ORG_ID, REGION_CODE, OrganisationKind
from cepbus.reference import ReferenceData, load_reference
from cepbus.signing import public_key_from_b64
from cepbus.topics import referral_inbox, referral_rejections

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


class DirectoryError(ValueError):
    """The directory is inconsistent, or an organisation is not in it."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartnerEntry(_Frozen):
    """A local partner as written in `directory.json`; `region_code` is None for a national one."""

    org_id: str = Field(pattern=ORG_ID)
    kind: OrganisationKind
    name: str = Field(min_length=1)
    region_code: str | None = Field(default=None, pattern=REGION_CODE)
    website: str | None = None
    example: bool = False
    note: str | None = None


class DirectoryEntry(_Frozen):
    """One organisation that can receive referrals and sign status updates."""

    org_id: str
    kind: OrganisationKind
    name: str
    region_code: str | None
    public_key: str
    example: bool = False

    @property
    def inbox_topic(self) -> str:
        return referral_inbox(self.org_id).name

    @property
    def rejections_topic(self) -> str:
        return referral_rejections(self.org_id).name

    def key(self) -> Ed25519PublicKey:
        return public_key_from_b64(self.public_key)


class _DirectoryFile(_Frozen):
    version: str = Field(min_length=1)
    source: str | None = None
    partners: list[PartnerEntry]
    public_keys: dict[str, str]

    @field_validator("public_keys")
    @classmethod
    def _keys_parse(cls, keys: dict[str, str]) -> dict[str, str]:
        bad = []
        for org_id, text in keys.items():
            try:
                public_key_from_b64(text)
            except ValueError as exc:
                bad.append(f"{org_id}: {exc}")
        if bad:
            raise ValueError("invalid public keys: " + "; ".join(bad))
        return keys


class Directory:
    """The validated directory, read-only."""

    def __init__(self, version: str, entries: Iterable[DirectoryEntry]) -> None:
        self.version = version
        self._entries = {entry.org_id: entry for entry in entries}
        self._keys: dict[str, Ed25519PublicKey] = {}

    @classmethod
    def build(cls, reference: ReferenceData, document: Mapping[str, Any]) -> Directory:
        try:
            parsed = _DirectoryFile.model_validate(document)
        except ValidationError as exc:
            raise DirectoryError(f"invalid directory: {exc}") from exc
        errors: list[str] = []
        operators = reference.organisations()
        ids = [org.org_id for org in operators] + [p.org_id for p in parsed.partners]
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
        if missing := sorted(set(ids) - set(parsed.public_keys)):
            errors.append(f"organisations without a public key: {', '.join(missing)}")
        if unknown := sorted(set(parsed.public_keys) - set(ids)):
            errors.append(f"public keys of unknown organisations: {', '.join(unknown)}")
        if errors:
            raise DirectoryError("invalid directory: " + "; ".join(errors))
        keys = parsed.public_keys
        entries = [
            DirectoryEntry(
                org_id=o.org_id,
                kind=o.kind,
                name=o.name,
                region_code=o.region_code,
                public_key=keys[o.org_id],
            )
            for o in operators
        ] + [
            DirectoryEntry(
                org_id=p.org_id,
                kind=p.kind,
                name=p.name,
                region_code=p.region_code,
                public_key=keys[p.org_id],
                example=p.example,
            )
            for p in parsed.partners
        ]
        return cls(parsed.version, entries)

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

    def public_key(self, org_id: str) -> Ed25519PublicKey:
        """The organisation's public key (parsed once)."""
        if org_id not in self._keys:
            self._keys[org_id] = self.get(org_id).key()
        return self._keys[org_id]


def load_directory_from(path: Path | str, reference: ReferenceData | None = None) -> Directory:
    """Load and validate a directory file (uncached: for tests and tools)."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    return Directory.build(reference or load_reference(), document)


@functools.cache
def load_directory() -> Directory:
    """The packaged directory, validated once per process."""
    text = resources.files("cepbus.reference").joinpath("data", "directory.json").read_text(encoding="utf-8")
    return Directory.build(load_reference(), json.loads(text))
