"""The person's contact on a referral, for the two SDKs (issue #24): the requester seals it to the
recipient's encryption key in the signed directory (`attach_contact`), the recipient opens it with its
private key (`open_referral_contact`). The format and the binding are the contract's
(`cepbus.contract.contact`); nothing here talks to Kafka.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cepbus.contract.contact import ContactError, ReferralContact, open_contact, seal_contact
from cepbus.contract.models import ReferralRequested
from cepbus.reference.directory import Directory, format_time
from cepbus.trust.keys import encryption_key_id


class ContactRefused(ValueError):
    """A contact the SDK will not attach; `reason` is short and stable (`no_consent`,
    `no_encryption_key`), the message one line naming what is missing. Nothing was sent."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def attach_contact(
    referral: ReferralRequested,
    contact: ReferralContact,
    directory: Directory,
    at: datetime | None = None,
) -> ReferralRequested:
    """`referral` carrying `contact` sealed to its recipient's newest encryption key valid at `at`
    (default: now). Refused without the person's consent, or when the directory lists no valid
    encryption key for the recipient (never listed, expired or revoked)."""
    if not referral.consent_to_share:
        raise ContactRefused(
            f"referral {referral.referral_id}: the person did not consent to share (consent_to_share is"
            " false): no contact may be attached",
            "no_consent",
        )
    when = at or datetime.now(UTC)
    key = directory.encryption_key_of(referral.recipient_org_id, when)
    if key is None:
        known = directory.encryption_keys_of(referral.recipient_org_id)
        why = (
            "it has none listed"
            if not known
            else "its keys " + ", ".join(k.key_id for k in known) + " are revoked or expired"
        )
        raise ContactRefused(
            f"referral {referral.referral_id}: {referral.recipient_org_id} has no encryption key valid at"
            f" {format_time(when)} in the referral directory (serial {directory.serial}): {why};"
            " the contact cannot be sealed to it",
            "no_encryption_key",
        )
    sealed = seal_contact(
        contact,
        key.key(),
        key.key_id,
        referral_id=referral.referral_id,
        requester_org_id=referral.requester_org_id,
        recipient_org_id=referral.recipient_org_id,
    )
    return referral.model_copy(update={"sealed_contact": sealed})


def own_encryption_key_id(org_id: str, key: X25519PrivateKey) -> str:
    """The directory id of this organisation's encryption key."""
    return encryption_key_id(org_id, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def open_referral_contact(referral: ReferralRequested, key: X25519PrivateKey) -> ReferralContact | None:
    """The contact of a referral addressed to the holder of `key`, in clear; None when it carries none;
    ContactError (one line) when it is sealed to another key, altered or moved from another referral."""
    sealed = referral.sealed_contact
    if sealed is None:
        return None
    return open_contact(
        sealed,
        key,
        own_encryption_key_id(referral.recipient_org_id, key),
        referral_id=referral.referral_id,
        requester_org_id=referral.requester_org_id,
        recipient_org_id=referral.recipient_org_id,
    )


__all__ = [
    "ContactError",
    "ContactRefused",
    "ReferralContact",
    "attach_contact",
    "open_referral_contact",
    "own_encryption_key_id",
]
