"""The sealed-contact vectors (`schemas/vectors/sealed-contacts.json`): a referral's contact sealed with
HPKE to a test recipient key, with every input an implementer needs to open it, and boxes that must not
open (one bit altered, replayed on another referral, re-addressed to another recipient).

HPKE draws a fresh ephemeral key for every box, so unlike the other vectors these cannot be rewritten
identically: `cep-bus vectors --reseal` makes a new file (only when the contact's format changes), and
`tests/unit/contract/test_sealed_contact.py` (Python) and `tests/node/contact.js` (Node.js, `@hpke/core`)
open the committed one. The golden vector of `fr.cepbus.ReferralRequested` carries this file's box.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cepbus.contract.contact import (
    CONTACT_INFO_TAG,
    ContactPreference,
    ReferralContact,
    contact_info,
    seal_contact,
)
from cepbus.contract.models import SealedContact
from cepbus.contract.schemas import schema_dir
from cepbus.trust.keys import encryption_key_id

SEALED_FILE = "sealed-contacts.json"
#: INSECURE test keys, published in the vectors: the seed of a recipient's X25519 test key.
ENCRYPTION_TEST_KEY_TAG = b"cep-bus vectors: encryption test key v1:"
RECIPIENT = "apec-r27"
REQUESTER = "cep-r27"
REFERRAL_ID = "3c8f1a6d-5e27-4b90-a4d3-0b6e9c2f7a18"


def encryption_test_key(org_id: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(
        hashlib.sha256(ENCRYPTION_TEST_KEY_TAG + org_id.encode()).digest()
    )


def encryption_test_key_id(org_id: str) -> str:
    raw = encryption_test_key(org_id).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return encryption_key_id(org_id, raw)


def example_contact() -> ReferralContact:
    return ReferralContact(
        first_name="Camille",
        last_name="Exemple",
        phone="+33 6 00 00 00 00",
        email="camille.exemple@example.org",
        contact_preference=ContactPreference.TELEPHONE,
        availability="en semaine après 17 h",
        situation="cadre en poste, projet de reconversion ; souhaite un rendez-vous à Besançon",
        referent_name="Conseillère CEP (exemple)",
        referent_contact="conseil@cep-exemple.fr",
    )


def _binding(referral_id: str, requester: str, recipient: str, key_id: str) -> dict[str, str]:
    return {
        "key_id": key_id,
        "recipient_org_id": recipient,
        "referral_id": referral_id,
        "requester_org_id": requester,
    }


def build_sealed_vectors() -> dict[str, Any]:
    """A new vectors document (new random boxes)."""
    key = encryption_test_key(RECIPIENT)
    kid = encryption_test_key_id(RECIPIENT)
    contact = example_contact()
    sealed = seal_contact(
        contact,
        key.public_key(),
        kid,
        referral_id=REFERRAL_ID,
        requester_org_id=REQUESTER,
        recipient_org_id=RECIPIENT,
    )
    binding = _binding(REFERRAL_ID, REQUESTER, RECIPIENT, kid)
    flipped = bytearray(sealed.ciphertext)
    flipped[40] ^= 0x01
    return {
        "doc": __doc__.split("\n\n")[0].replace("\n", " "),
        "suite": {
            "mode": "base",
            "kem": "DHKEM(X25519, HKDF-SHA256)",
            "kem_id": 32,
            "kdf": "HKDF-SHA256",
            "kdf_id": 1,
            "aead": "AES-128-GCM",
            "aead_id": 1,
            "box": "enc (32 bytes) || AEAD ciphertext; aad empty",
        },
        "info": "info_tag_hex || canonical JSON of the binding (sorted keys, no spaces, UTF-8)",
        "info_tag_hex": CONTACT_INFO_TAG.hex(),
        "recipient": {
            "org_id": RECIPIENT,
            "key_id": kid,
            "test_private_key_hex": key.private_bytes_raw().hex(),
            "public_key_b64": base64.b64encode(key.public_key().public_bytes_raw()).decode(),
        },
        "sealed": [
            {
                "name": "besancon-referral-to-apec",
                "binding": binding,
                "info_hex": contact_info(REFERRAL_ID, REQUESTER, RECIPIENT, kid).hex(),
                "contact": contact.model_dump(mode="json"),
                "plaintext_hex": contact.plaintext().hex(),
                "ciphertext_hex": sealed.ciphertext.hex(),
                "ciphertext_sha256_hex": sealed.ciphertext_sha256.hex(),
            }
        ],
        "must_not_open": [
            {
                "name": "one bit altered",
                "binding": binding,
                "ciphertext_hex": bytes(flipped).hex(),
            },
            {
                "name": "replayed on another referral",
                "binding": _binding("another-referral", REQUESTER, RECIPIENT, kid),
                "ciphertext_hex": sealed.ciphertext.hex(),
            },
            {
                "name": "re-addressed to another recipient",
                "binding": _binding(REFERRAL_ID, REQUESTER, "apec-r11", kid),
                "ciphertext_hex": sealed.ciphertext.hex(),
            },
            {
                "name": "claimed by another requester",
                "binding": _binding(REFERRAL_ID, "cep-r11", RECIPIENT, kid),
                "ciphertext_hex": sealed.ciphertext.hex(),
            },
        ],
    }


def sealed_vectors_path(folder: Path | None = None) -> Path:
    return (folder or schema_dir().parent / "vectors") / SEALED_FILE


def load_sealed_vectors(folder: Path | None = None) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(sealed_vectors_path(folder).read_text(encoding="utf-8"))
    return document


def write_sealed_vectors(folder: Path) -> Path:
    path = sealed_vectors_path(folder)
    path.write_text(json.dumps(build_sealed_vectors(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def example_sealed_contact() -> SealedContact:
    """The committed box of the example referral (what its golden vector carries)."""
    vector = load_sealed_vectors()["sealed"][0]
    return SealedContact(
        recipient_key_id=vector["binding"]["key_id"],
        ciphertext=bytes.fromhex(vector["ciphertext_hex"]),
        ciphertext_sha256=bytes.fromhex(vector["ciphertext_sha256_hex"]),
    )


__all__ = [
    "SEALED_FILE",
    "build_sealed_vectors",
    "encryption_test_key",
    "encryption_test_key_id",
    "example_contact",
    "example_sealed_contact",
    "load_sealed_vectors",
    "write_sealed_vectors",
]
