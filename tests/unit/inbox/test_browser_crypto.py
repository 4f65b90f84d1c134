"""The inbox's browser modules in headless Chromium (Debian's, through Playwright): `statement.js`
rebuilds, from the sign page's fields, exactly the statement fastavro writes (its Avro single-object
bytes), its digest and the batch-of-one message (the same cases as the Node.js check,
`statement_cases.py`), and refuses what it does not encode; `keystore.js` imports a
`cep-bus keys generate` PEM as a non-extractable WebCrypto Ed25519 key whose statement signature the
router's edge (`cepbus.reference.authorship`) verifies with the directory's key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from cepbus.contract.statements import StatementSignature
from cepbus.reference.directory import load_directory
from cepbus.trust.development import dev_private_key
from services.inbox.app import HERE
from tests.support.authorship import authorship
from tests.support.browser import chromium, require_chromium, serve_folder
from tests.unit.inbox.statement_cases import BROWSER_ONLY_CASES, CASES, ORG, case_documents


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    """A page on a loopback origin (a secure context: WebCrypto) serving the inbox's static files."""
    require_chromium()
    with serve_folder(HERE / "static") as base, chromium() as browser:
        tab = browser.new_page()
        tab.goto(f"{base}/inbox.css")
        yield tab


def test_the_browser_rebuilds_the_statement_fastavro_writes(page: Any) -> None:
    cases = case_documents([*CASES, *BROWSER_ONLY_CASES])
    found = page.evaluate(
        """async (cases) => {
            const m = await import('/statement.js');
            const out = [];
            for (const c of cases) {
                const {statement, digest, message} = await m.toSign(c.fields, c.fingerprint);
                out.push([m.toHex(statement), m.toHex(digest), m.toHex(message)]);
            }
            return out;
        }""",
        cases,
    )
    assert found == [[c["statement_hex"], c["digest_hex"], c["message_hex"]] for c in cases]
    assert len(found) == len(CASES) + len(BROWSER_ONLY_CASES)


def test_the_browser_refuses_what_it_does_not_encode(page: Any) -> None:
    case = case_documents()[0]
    fields = case["fields"]
    errors = page.evaluate(
        """async ([cases, fingerprint]) => {
            const m = await import('/statement.js');
            return cases.map(([fields, schema]) => {
                try {
                    m.statementBytes(fields, schema || fingerprint);
                    return 'accepted';
                } catch (e) {
                    return e.message;
                }
            });
        }""",
        [
            [
                [fields, "0000000000000000"],
                [_with_envelope(fields, event_id=fields["envelope"]["event_id"].upper()), None],
                [_with_envelope(fields, occurred_at=1.5), None],
                [{**fields, "comment": "hors schéma"}, None],
                [{**fields, "signature": "00" * 64}, None],
                [{**fields, "status": "approved"}, None],
            ],
            case["fingerprint"],
        ],
    )
    assert "this page encodes fr.cepbus.ReferralStatusChanged" in errors[0]
    assert "lowercase hyphenated UUID" in errors[1] and "integer milliseconds" in errors[2]
    assert "a field this page does not encode" in errors[3]
    assert "the signature travels beside the event" in errors[4]
    assert "not a symbol of fr.cepbus.ReferralStatus" in errors[5]


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


def test_a_pem_key_becomes_a_non_extractable_key_whose_signatures_the_edge_verifies(page: Any) -> None:
    target = next(c for c in case_documents() if c["name"] == "non-ascii-note")
    result = page.evaluate(
        """async ([org, pem, target]) => {
            const s = await import('/statement.js');
            const k = await import('/keystore.js');
            await k.importKey(org, pem);
            const stored = await k.loadKey(org);   // read back from IndexedDB
            let exported = 'exported';
            try { await crypto.subtle.exportKey('pkcs8', stored.key); } catch (e) { exported = e.name; }
            const {message} = await s.toSign(target.fields, target.fingerprint);
            const signature = await k.sign(stored, message);
            return {
                key_id: stored.key_id,
                public_key: stored.public_key,
                extractable: stored.key.extractable,
                exported,
                signature: s.toBase64(signature),
                has_pem: JSON.stringify(stored).includes('PRIVATE'),
            };
        }""",
        [ORG, _pem(ORG), target],
    )
    [directory_key] = load_directory().keys_of(ORG)
    assert (result["key_id"], result["public_key"]) == (directory_key.key_id, directory_key.public_key)
    assert result["extractable"] is False and result["exported"] == "InvalidAccessError"
    assert result["has_pem"] is False
    signed = StatementSignature.parse(
        f'{{"v":1,"key":"{result["key_id"]}","sig":"{result["signature"]}","n":1,"i":0,"path":""}}'.encode()
    )
    author = authorship().verify(bytes.fromhex(target["statement_hex"]), signed.header())
    assert (author.org_id, author.key_id) == (ORG, directory_key.key_id)


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
