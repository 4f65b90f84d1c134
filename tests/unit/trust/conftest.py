"""Builders for the trust tests: directory bodies with real keys, signed status updates."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.contract.models import ReferralStatus, ReferralStatusChanged
from cepbus.contract.signatures import sign_status
from cepbus.reference import load_reference
from cepbus.reference.directory import (
    Directory,
    clear_directory_cache,
    key_entry,
    packaged_directory_text,
    split_document,
)
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
    return body


def build(document: dict[str, Any]) -> Directory:
    return Directory.build(load_reference(), document)


def accepted(
    signer: str, key: Ed25519PrivateKey, status: ReferralStatus = ReferralStatus.ACCEPTED
) -> ReferralStatusChanged:
    """A status update from `signer`, signed with `key`."""
    unsigned = update(referral(recipient=signer), status, sender=signer)
    return sign_status(unsigned, signer, key)


@pytest.fixture(autouse=True)
def _fresh_directory_cache() -> Iterator[None]:
    clear_directory_cache()
    yield
    clear_directory_cache()
