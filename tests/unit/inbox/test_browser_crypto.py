"""The inbox's browser modules in headless Chromium (Debian's, through Playwright): `canonical.js`
computes byte for byte what `cepbus.contract.signatures.canonical_status_bytes` computes, and
`keystore.js` imports a `cep-bus keys generate` PEM as a non-extractable WebCrypto Ed25519 key whose
signatures Python verifies with the directory's public key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from cepbus.contract.models import Envelope, ReferralStatus, ReferralStatusChanged
from cepbus.contract.signatures import canonical_status_bytes, signature_valid
from cepbus.reference.directory import load_directory
from cepbus.trust.development import dev_private_key
from services.inbox.app import HERE
from services.inbox.steps import browser_fields
from tests.support.browser import chromium, require_chromium, serve_folder

ORG = "transitions-pro-r76"


def update(status: ReferralStatus, **fields: Any) -> ReferralStatusChanged:
    envelope = {
        "event_id": uuid.uuid4(),
        "event_type": ReferralStatusChanged.avro_name,
        "occurred_at": datetime(2026, 3, 2, 9, 30, 15, 123000, tzinfo=UTC),
        "producer_org_id": ORG,
        "correlation_id": "corr-1",
        "person_pseudonym": "p-1",
        "causation_id": str(uuid.uuid4()),
        **fields.pop("envelope", {}),
    }
    return ReferralStatusChanged(
        envelope=Envelope(**envelope),
        referral_id=fields.pop("referral_id", "ref-1"),
        status=status,
        actor_org_id=ORG,
        signer_org_id=ORG,
        **fields,
    )


CASES = [
    update(ReferralStatus.RECEIVED),
    update(ReferralStatus.DECLINED, reason_code="no_capacity", note="Pas de place avant l'été — désolé"),
    update(ReferralStatus.INTERIM_UPDATE, note="Rendez-vous décalé ☕ 🚲 à Besançon, œuvre, ß, 日本"),
    update(ReferralStatus.COMPLETED, reason_code="other", note="", envelope={"causation_id": None}),
    update(
        ReferralStatus.ACCEPTED,
        note="é" * 500,  # 1000 UTF-8 bytes: the length prefix counts bytes, not characters
        envelope={"occurred_at": datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)},
    ),
]


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    """A page on a loopback origin (a secure context: WebCrypto) serving the inbox's static files."""
    require_chromium()
    with serve_folder(HERE / "static") as base, chromium() as browser:
        tab = browser.new_page()
        tab.goto(f"{base}/inbox.css")
        yield tab


def test_the_browser_computes_the_canonical_bytes_python_computes(page: Any) -> None:
    found = page.evaluate(
        """async (updates) => {
            const m = await import('/canonical.js');
            return updates.map((u) => m.toHex(m.canonicalStatusBytes(u)));
        }""",
        [browser_fields(u) for u in CASES],
    )
    assert found == [canonical_status_bytes(u).hex() for u in CASES]


def test_the_browser_refuses_fields_that_are_not_in_canonical_form(page: Any) -> None:
    errors = page.evaluate(
        """async ([upper, fractional]) => {
            const m = await import('/canonical.js');
            const outcome = [];
            for (const u of [upper, fractional]) {
                try {
                    m.canonicalStatusBytes(u);
                    outcome.push('accepted');
                } catch (e) {
                    outcome.push(e.message);
                }
            }
            return outcome;
        }""",
        [
            _with_envelope(browser_fields(CASES[0]), event_id=str(CASES[0].envelope.event_id).upper()),
            _with_envelope(browser_fields(CASES[0]), occurred_at=1.5),
        ],
    )
    assert "lowercase hyphenated UUID" in errors[0] and "integer milliseconds" in errors[1]


def _with_envelope(fields: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**fields, "envelope": {**fields["envelope"], **changes}}


def _pem(org: str) -> str:
    return (
        dev_private_key(org)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def test_a_pem_key_becomes_a_non_extractable_key_whose_signatures_python_verifies(page: Any) -> None:
    target = CASES[2]
    result = page.evaluate(
        """async ([org, pem, fields]) => {
            const c = await import('/canonical.js');
            const k = await import('/keystore.js');
            await k.importKey(org, pem);
            const stored = await k.loadKey(org);   // read back from IndexedDB
            let exported = 'exported';
            try { await crypto.subtle.exportKey('pkcs8', stored.key); } catch (e) { exported = e.name; }
            const signature = await k.sign(stored, c.canonicalStatusBytes(fields));
            return {
                key_id: stored.key_id,
                public_key: stored.public_key,
                extractable: stored.key.extractable,
                exported,
                signature: c.toHex(signature),
                has_pem: JSON.stringify(stored).includes('PRIVATE'),
            };
        }""",
        [ORG, _pem(ORG), browser_fields(target)],
    )
    [directory_key] = load_directory().keys_of(ORG)
    assert (result["key_id"], result["public_key"]) == (directory_key.key_id, directory_key.public_key)
    assert result["extractable"] is False and result["exported"] == "InvalidAccessError"
    assert result["has_pem"] is False
    signed = target.model_copy(update={"signature": bytes.fromhex(result["signature"])})
    assert signature_valid(signed, directory_key.key())


def test_a_file_that_is_not_a_pkcs8_private_key_is_refused(page: Any, tmp_path: Path) -> None:
    public_pem = (
        dev_private_key(ORG)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    message = page.evaluate(
        """async ([org, pem]) => {
            const k = await import('/keystore.js');
            try { await k.importKey(org, pem); return 'imported'; } catch (e) { return e.message; }
        }""",
        ["someone-else", public_pem],
    )
    assert "PKCS#8" in message
