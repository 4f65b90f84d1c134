"""The person's contact sealed to the recipient (issue #24): the committed vectors open with the test key
and nothing else does; a box replayed on another referral or re-addressed does not open; a contact out of
its bounds is refused before sealing, with a message naming the field."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError

from cepbus.contract.contact import (
    ContactError,
    ReferralContact,
    contact_info,
    open_contact,
    seal_contact,
)
from cepbus.contract.models import SealedContact
from cepbus_app.vectors.sealed import encryption_test_key, example_contact, load_sealed_vectors

VECTORS = load_sealed_vectors()
KEY = X25519PrivateKey.from_private_bytes(bytes.fromhex(VECTORS["recipient"]["test_private_key_hex"]))
KEY_ID = VECTORS["recipient"]["key_id"]


def _sealed(ciphertext: bytes, key_id: str = KEY_ID) -> SealedContact:
    return SealedContact(
        recipient_key_id=key_id, ciphertext=ciphertext, ciphertext_sha256=hashlib.sha256(ciphertext).digest()
    )


def _open(box: SealedContact, binding: dict[str, str], key: X25519PrivateKey = KEY) -> ReferralContact:
    return open_contact(
        box,
        key,
        KEY_ID,
        referral_id=binding["referral_id"],
        requester_org_id=binding["requester_org_id"],
        recipient_org_id=binding["recipient_org_id"],
    )


@pytest.mark.parametrize("vector", VECTORS["sealed"], ids=lambda v: v["name"])
def test_the_committed_box_opens_with_the_recipients_key_to_the_committed_contact(
    vector: dict[str, Any],
) -> None:
    binding = vector["binding"]
    info = contact_info(
        binding["referral_id"], binding["requester_org_id"], binding["recipient_org_id"], KEY_ID
    )
    assert info.hex() == vector["info_hex"]
    box = _sealed(bytes.fromhex(vector["ciphertext_hex"]))
    assert box.ciphertext_sha256.hex() == vector["ciphertext_sha256_hex"]
    contact = _open(box, binding)
    assert contact.model_dump(mode="json") == vector["contact"]
    assert contact.plaintext().hex() == vector["plaintext_hex"]
    assert (
        KEY.public_key().public_bytes_raw() == encryption_test_key("apec-r27").public_key().public_bytes_raw()
    )


@pytest.mark.parametrize("vector", VECTORS["must_not_open"], ids=lambda v: v["name"])
def test_a_box_altered_replayed_or_readdressed_does_not_open(vector: dict[str, Any]) -> None:
    with pytest.raises(ContactError, match="does not open: altered, or sealed for another referral"):
        _open(_sealed(bytes.fromhex(vector["ciphertext_hex"])), vector["binding"])


def test_another_key_cannot_open_it_and_is_told_which_key_it_is_sealed_to() -> None:
    vector = VECTORS["sealed"][0]
    box = _sealed(bytes.fromhex(vector["ciphertext_hex"]))
    with pytest.raises(ContactError, match=f"sealed to key {KEY_ID}, not to this key"):
        open_contact(
            box, KEY, "0000000000000000", referral_id="r", requester_org_id="a", recipient_org_id="b"
        )
    intruder = X25519PrivateKey.generate()  # holding the key id is not holding the key
    with pytest.raises(ContactError, match="does not open"):
        _open(box, vector["binding"], intruder)


def test_a_ciphertext_that_does_not_match_its_digest_is_called_altered() -> None:
    vector = VECTORS["sealed"][0]
    box = SealedContact(
        recipient_key_id=KEY_ID,
        ciphertext=bytes.fromhex(vector["ciphertext_hex"])[:-1] + b"\x00",
        ciphertext_sha256=bytes.fromhex(vector["ciphertext_sha256_hex"]),
    )
    with pytest.raises(ContactError, match="does not match its digest: altered"):
        _open(box, vector["binding"])


def test_a_fresh_seal_opens_and_each_box_is_new() -> None:
    contact = example_contact()
    binding = {"referral_id": "r-1", "requester_org_id": "cep-r27", "recipient_org_id": "apec-r27"}
    first, second = (seal_contact(contact, KEY.public_key(), KEY_ID, **binding) for _ in range(2))
    assert first.ciphertext != second.ciphertext  # a fresh ephemeral key each time
    assert _open(first, binding) == contact == _open(second, binding)
    assert b"Camille" not in first.ciphertext and b"example.org" not in first.ciphertext


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "camille@", "is not an email address"),
        ("email", "a" * 250 + "@x.fr", "at most 254 characters"),
        ("phone", "06 12 34 AB", "is not a telephone number"),
        ("first_name", "", "at least 1 character"),
        ("situation", "x" * 2001, "at most 2000 characters"),
        ("referent_contact", "nobody", "neither an email address nor a telephone number"),
        ("contact_preference", "pigeon", "Input should be"),
    ],
)
def test_a_contact_out_of_its_bounds_is_refused_naming_the_field(
    field: str, value: str, message: str
) -> None:
    data = example_contact().model_dump(mode="json") | {field: value}
    with pytest.raises(ValidationError) as refused:
        ReferralContact.model_validate(data)
    assert refused.value.errors()[0]["loc"] == (field,)
    assert message in str(refused.value)
