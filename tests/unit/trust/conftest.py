"""Builders for the trust tests: directory bodies with real keys, status updates whose statement is
signed with a given key, and the edge's verdict on them at a given time."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cepbus.contract import codec
from cepbus.contract.models import ReferralStatus, ReferralStatusChanged
from cepbus.contract.topics import REFERRAL_STATUS
from cepbus.reference import load_reference
from cepbus.reference.authorship import Authorship, AuthorshipError
from cepbus.reference.directory import (
    Directory,
    DirectoryKey,
    clear_directory_cache,
    encryption_key_entry,
    key_entry,
    packaged_directory_text,
    split_document,
)
from cepbus.reference.producers import ProducerCatalog
from cepbus.sdk.publisher import signer_of
from tests.support.factories import referral, update

APEC = "apec-r11"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def packaged_body() -> dict[str, Any]:
    body, _ = split_document(json.loads(packaged_directory_text()))
    return copy.deepcopy(body)


def production_body(keys: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The packaged partners, `development: false`, a fresh real key for every organisation (from
    T0), with `keys` replacing the entries of the organisations it names."""
    body = packaged_body()
    body["development"] = False
    body["source"] = "test production directory"
    orgs = sorted({k["org_id"] for k in body["keys"]})
    replaced = keys or {}
    body["keys"] = [
        entry
        for org_id in orgs
        for entry in replaced.get(org_id, [key_entry(org_id, Ed25519PrivateKey.generate(), T0)])
    ]
    # and a fresh encryption key for every organisation that has one in the packaged directory
    body["encryption_keys"] = [
        encryption_key_entry(entry["org_id"], X25519PrivateKey.generate(), T0)
        for entry in body["encryption_keys"]
    ]
    return body


def build(document: dict[str, Any]) -> Directory:
    return Directory.build(load_reference(), document)


@dataclass(frozen=True)
class Stated:
    """A status update as it travels: its bytes and its `cepbus-signature` header (None: unsigned)."""

    update: ReferralStatusChanged
    value: bytes
    header: bytes | None

    def altered(self, **fields: object) -> Stated:
        """The same header on an update with other content: what a tamperer sends."""
        changed = self.update.model_copy(update=fields)
        return Stated(changed, codec.encode(changed), self.header)

    def unsigned(self) -> Stated:
        return Stated(self.update, self.value, None)


def accepted(signer: str, key: Ed25519PrivateKey, status: ReferralStatus = ReferralStatus.ACCEPTED) -> Stated:
    """A status update from `signer`, its statement signed with `key` under `signer`'s key id."""
    event = update(referral(recipient=signer), status, sender=signer)
    value = codec.encode(event)
    [signature] = signer_of(signer, key).sign([value])
    return Stated(event, value, signature.header())


def verdict(directory: Directory, stated: Stated, at: datetime) -> DirectoryKey | str:
    """What the edge decides when the bus records `stated` at `at` (its own clock, never the sender's):
    the directory key that signed it, or the reason it is refused (`key_not_valid`, `bad_signature`...)."""
    edge = Authorship(directory, ProducerCatalog.build(load_reference(), directory))
    try:
        author = edge.verify(stated.value, stated.header, at)
        edge.judge(stated.update, author, REFERRAL_STATUS)
    except AuthorshipError as exc:
        return exc.reason
    key = directory.key_by_id(author.key_id)
    assert key is not None
    return key


@pytest.fixture(autouse=True)
def _fresh_directory_cache() -> Iterator[None]:
    clear_directory_cache()
    yield
    clear_directory_cache()
