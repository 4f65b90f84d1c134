"""What the router checks of a referral's sealed contact before it delivers the referral (issue #24): it
cannot read the contact, but it can refuse a box that its recipient could not open, so that nothing
unreadable, or readable by someone else, is delivered as a contact.

Pure: a referral and the directory in, a refusal (reason, detail) or None out; the handler turns a
refusal into a dead letter."""

from __future__ import annotations

import hashlib
from datetime import datetime

from cepbus.contract.contact import ENC_BYTES
from cepbus.contract.models import ReferralRequested
from cepbus.reference.directory import Directory, format_time


def contact_problem(
    referral: ReferralRequested, directory: Directory, at: datetime
) -> tuple[str, str] | None:
    """Why the referral's sealed contact must not be delivered, or None (none carried, or sealed to the
    recipient's encryption key valid at `at`, the bus's clock, and whole)."""
    sealed = referral.sealed_contact
    if sealed is None:
        return None
    key = directory.encryption_key_by_id(sealed.recipient_key_id)
    if key is None or key.org_id != referral.recipient_org_id:
        owner = "no organisation" if key is None else key.org_id
        return (
            "contact_not_for_recipient",
            f"referral {referral.referral_id}: the contact is sealed to key {sealed.recipient_key_id} of"
            f" {owner}, not to an encryption key of the recipient {referral.recipient_org_id}",
        )
    if not key.valid_at(at):
        return (
            "contact_key_not_valid",
            f"referral {referral.referral_id}: the contact is sealed to key {key.key_id} of"
            f" {key.org_id}, which is revoked or expired at {format_time(at)}",
        )
    if (
        len(sealed.ciphertext) <= ENC_BYTES
        or hashlib.sha256(sealed.ciphertext).digest() != sealed.ciphertext_sha256
    ):
        return (
            "contact_digest_mismatch",
            f"referral {referral.referral_id}: the sealed contact is empty or does not match its SHA-256",
        )
    return None


__all__ = ["contact_problem"]
