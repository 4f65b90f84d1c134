"""The person's contact on a referral, sealed to the recipient organisation (issue #24).

A referral made with the person's consent carries what its recipient needs to act (who the person is,
how to reach them, the referent's contact): a `ReferralContact` (`fr.cepbus.ReferralContact.avsc`),
written as plain JSON (UTF-8, sorted keys, null fields included) and sealed with HPKE (RFC 9180, base
mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM) to the recipient's encryption key in the
signed directory. The sealed form is `fr.cepbus.SealedContact`: the key id, HPKE's `enc` followed by the
AEAD ciphertext, and the ciphertext's SHA-256 (what the ledger keeps instead of it).

**What is bound.** HPKE's `info` (which feeds the key schedule, so any change makes the box fail to
open) is `cep-bus/contact/v1`, a zero byte and the canonical JSON of the referral id, the requester, the
recipient and the recipient's key id: a box copied onto another referral, or re-addressed to another
organisation or key, does not open. The bus, the ledger, the other partners and the logs only ever see
the ciphertext; the recipient opens it with its private key (the partner SDK in Python, the inbox in the
browser with `@hpke/core`).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from typing import Any

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cepbus.contract.models import SEALED_CONTACT_MAX_BYTES, SealedContact

CONTACT_INFO_TAG = b"cep-bus/contact/v1\x00"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
#: HPKE's encapsulated key for DHKEM(X25519): the first 32 bytes of a box.
ENC_BYTES = 32
NAME_MAX_LENGTH = 100
EMAIL_MAX_LENGTH = 254
AVAILABILITY_MAX_LENGTH = 500
SITUATION_MAX_LENGTH = 2000
REFERENT_NAME_MAX_LENGTH = 200
_EMAIL = re.compile(
    r"^[^@\s\"<>,;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"
)
_PHONE = re.compile(r"^\+?[0-9][0-9 .()-]{4,23}$")


class ContactPreference(enum.StrEnum):
    TELEPHONE = "telephone"
    EMAIL = "email"
    REFERENT = "referent"
    OTHER = "other"


def _is_email(value: str) -> bool:
    return len(value) <= EMAIL_MAX_LENGTH and _EMAIL.match(value) is not None


class ReferralContact(BaseModel):
    """Who the person is and how to reach them: what the recipient reads, and no one else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH)
    last_name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH)
    phone: str | None = Field(default=None, max_length=25)
    email: str | None = Field(default=None, max_length=EMAIL_MAX_LENGTH)
    contact_preference: ContactPreference
    availability: str | None = Field(default=None, max_length=AVAILABILITY_MAX_LENGTH)
    situation: str | None = Field(default=None, max_length=SITUATION_MAX_LENGTH)
    referent_name: str = Field(min_length=1, max_length=REFERENT_NAME_MAX_LENGTH)
    referent_contact: str = Field(min_length=1, max_length=EMAIL_MAX_LENGTH)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _is_email(value):
            raise ValueError(f"{value[:60]!r} is not an email address")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value):
            raise ValueError(
                f"{value[:30]!r} is not a telephone number (digits, spaces, . - ( ) and a leading +)"
            )
        return value

    @field_validator("referent_contact")
    @classmethod
    def _referent_contact(cls, value: str) -> str:
        if not (_is_email(value) or _PHONE.match(value)):
            raise ValueError(f"{value[:60]!r} is neither an email address nor a telephone number")
        return value

    def plaintext(self) -> bytes:
        """What is sealed: the contact as plain JSON, sorted keys, every field present."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()


class ContactError(ValueError):
    """A contact that cannot be sealed or opened; the message is one line saying why."""


def contact_info(referral_id: str, requester_org_id: str, recipient_org_id: str, key_id: str) -> bytes:
    """HPKE `info`: what a box is bound to (see the module doc)."""
    binding = {
        "key_id": key_id,
        "recipient_org_id": recipient_org_id,
        "referral_id": referral_id,
        "requester_org_id": requester_org_id,
    }
    return (
        CONTACT_INFO_TAG
        + json.dumps(binding, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


def seal_contact(
    contact: ReferralContact,
    recipient_key: X25519PublicKey,
    recipient_key_id: str,
    *,
    referral_id: str,
    requester_org_id: str,
    recipient_org_id: str,
) -> SealedContact:
    """The contact sealed to `recipient_key` (the recipient's directory encryption key)."""
    info = contact_info(referral_id, requester_org_id, recipient_org_id, recipient_key_id)
    box = SUITE.encrypt(contact.plaintext(), recipient_key, info=info)
    if len(box) > SEALED_CONTACT_MAX_BYTES:
        raise ContactError(f"the sealed contact is {len(box)} bytes (at most {SEALED_CONTACT_MAX_BYTES})")
    return SealedContact(
        recipient_key_id=recipient_key_id, ciphertext=box, ciphertext_sha256=hashlib.sha256(box).digest()
    )


def open_contact(
    sealed: SealedContact,
    private_key: X25519PrivateKey,
    private_key_id: str,
    *,
    referral_id: str,
    requester_org_id: str,
    recipient_org_id: str,
) -> ReferralContact:
    """The contact in clear, for the holder of the recipient's private key; ContactError otherwise."""
    if sealed.recipient_key_id != private_key_id:
        raise ContactError(
            f"the contact of referral {referral_id} is sealed to key {sealed.recipient_key_id}, not to"
            f" this key ({private_key_id})"
        )
    if hashlib.sha256(sealed.ciphertext).digest() != sealed.ciphertext_sha256:
        raise ContactError(f"the contact of referral {referral_id} does not match its digest: altered")
    info = contact_info(referral_id, requester_org_id, recipient_org_id, sealed.recipient_key_id)
    try:
        plaintext = SUITE.decrypt(sealed.ciphertext, private_key, info=info)
    except Exception:  # cryptography raises InvalidTag (or ValueError on a short box): one answer
        raise ContactError(
            f"the contact of referral {referral_id} does not open: altered, or sealed for another referral,"
            " requester or recipient"
        ) from None
    return parse_contact(plaintext)


def parse_contact(plaintext: bytes) -> ReferralContact:
    """A contact from its sealed JSON; ContactError naming the first bad field."""
    try:
        document: Any = json.loads(plaintext)
        return ReferralContact.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "contact"
        raise ContactError(f"the opened contact is not valid: {where}: {first['msg']}") from None
    except (ValueError, UnicodeDecodeError):
        raise ContactError("the opened contact is not JSON") from None


__all__ = [
    "CONTACT_INFO_TAG",
    "SUITE",
    "ContactError",
    "ContactPreference",
    "ReferralContact",
    "contact_info",
    "open_contact",
    "parse_contact",
    "seal_contact",
]
