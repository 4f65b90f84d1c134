"""The inbox's opening of the person's sealed contact, in headless Chromium (Debian's, through
Playwright): `keystore.js` imports an X25519 PEM key as a non-extractable WebCrypto key whose key id is
the directory's; `contact.js` (the vendored @hpke/core) opens every box of
`schemas/vectors/sealed-contacts.json` to its contact and refuses every box that must not open; a box
sealed now by the Python SDK to a partner's directory key opens to the same contact, non-ASCII text
included; an altered box, a box under another key, and no key at all are each refused with their
reason (what the referral page turns into its French messages)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cepbus.contract.contact import ContactPreference, ReferralContact, contact_info, seal_contact
from cepbus.reference.directory import load_directory
from cepbus.trust.development import dev_encryption_key, dev_private_key
from services.inbox.app import HERE
from tests.support import ROOT
from tests.support.browser import chromium, require_chromium, serve_folder
from tests.support.node import require_node

VECTORS = ROOT / "schemas" / "vectors" / "sealed-contacts.json"
PARTNER, REQUESTER, OTHER = "transitions-pro-r11", "cep-r11", "apec-r11"
REFERRAL_ID = "6f1e0c5a-3b7d-4e29-9a41-2c8d5e7f9b03"
CONTACT = ReferralContact(
    first_name="Éloïse",
    last_name="N'Diaye-Müller",
    phone="+33 6 12 34 56 78",
    email=None,
    contact_preference=ContactPreference.REFERENT,
    availability="le mardi après 17 h ; pas le week-end 🚲",
    situation="salariée, projet de reconversion « métiers du soin »\nsouhaite un rendez-vous à Évry",
    referent_name="Conseillère CEP",
    referent_contact="conseil@cep-exemple.fr",
)


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    """A page on a loopback origin (a secure context: WebCrypto) serving the inbox's static files."""
    require_chromium()
    with serve_folder(HERE / "static") as base, chromium() as browser:
        tab = browser.new_page()
        tab.goto(f"{base}/inbox.css")
        yield tab


def pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )


#: In the page: import `pem` as `org`'s encryption key, then open each box; returns the stored record's
#: public facts and, per box, the contact or the reason it did not open.
OPEN_BOXES = """async ([org, pem, boxes]) => {
    const k = await import('/keystore.js');
    const c = await import('/contact.js');
    if (pem !== null) await k.importEncryptionKey(org, pem);
    const record = await k.loadEncryptionKey(org);   // read back from IndexedDB
    const opened = [];
    for (const box of boxes) {
        try {
            opened.push({contact: await c.openContact(box, record)});
        } catch (e) {
            opened.push({reason: e instanceof c.ContactUnopened ? e.reason : `${e.name}: ${e.message}`});
        }
    }
    if (!record) return {record: null, opened};
    let exported = 'exported';
    try { await crypto.subtle.exportKey('pkcs8', record.key); } catch (e) { exported = e.name; }
    return {
        record: {
            key_id: record.key_id, public_key: record.public_key, extractable: record.key.extractable,
            usages: record.key.usages, exported, has_pem: JSON.stringify(record).includes('PRIVATE'),
        },
        opened,
    };
}"""


def page_box(binding: dict[str, str], box: bytes, digest: bytes | None = None) -> dict[str, str]:
    """A box as the referral page passes it to its script (services/inbox/pages/referrals.py)."""
    return {
        "referral_id": binding["referral_id"],
        "requester_org_id": binding["requester_org_id"],
        "recipient_org_id": binding["recipient_org_id"],
        "key_id": binding["key_id"],
        "ciphertext_b64": base64.b64encode(box).decode(),
        "ciphertext_sha256_hex": (digest or hashlib.sha256(box).digest()).hex(),
    }


def test_every_vector_opens_in_the_browser_and_none_that_must_not(page: Any) -> None:
    vectors = json.loads(VECTORS.read_text())
    recipient = vectors["recipient"]
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(recipient["test_private_key_hex"]))
    sealed = [page_box(v["binding"], bytes.fromhex(v["ciphertext_hex"])) for v in vectors["sealed"]]
    refused = [page_box(v["binding"], bytes.fromhex(v["ciphertext_hex"])) for v in vectors["must_not_open"]]
    result = page.evaluate(OPEN_BOXES, [recipient["org_id"], pem(key), sealed + refused])
    record = result["record"]
    assert (record["key_id"], record["public_key"]) == (recipient["key_id"], recipient["public_key_b64"])
    assert record["extractable"] is False and record["usages"] == ["deriveBits"]
    assert record["exported"] == "InvalidAccessError" and record["has_pem"] is False
    opened = result["opened"]
    assert [o.get("contact") for o in opened[: len(sealed)]] == [v["contact"] for v in vectors["sealed"]]
    assert [o.get("reason") for o in opened[len(sealed) :]] == ["unopened"] * len(refused)
    infos = page.evaluate(
        """async (bindings) => {
            const c = await import('/contact.js');
            const s = await import('/statement.js');
            return bindings.map((b) => s.toHex(c.contactInfo(b)));
        }""",
        [v["binding"] for v in vectors["sealed"]],
    )
    assert infos == [v["info_hex"] for v in vectors["sealed"]]


def test_a_contact_the_sdk_sealed_to_a_partner_opens_with_its_directory_key_and_nothing_else(
    page: Any,
) -> None:
    directory_key = load_directory().encryption_key_of(PARTNER)
    assert directory_key is not None
    sealed = seal_contact(
        CONTACT,
        directory_key.key(),
        directory_key.key_id,
        referral_id=REFERRAL_ID,
        requester_org_id=REQUESTER,
        recipient_org_id=PARTNER,
    )
    binding = {
        "referral_id": REFERRAL_ID,
        "requester_org_id": REQUESTER,
        "recipient_org_id": PARTNER,
        "key_id": directory_key.key_id,
    }
    box = sealed.ciphertext
    flipped = box[:40] + bytes([box[40] ^ 0x01]) + box[41:]
    boxes = [
        page_box(binding, box),
        page_box(binding, box, digest=hashlib.sha256(b"another box").digest()),  # does not match its digest
        page_box(binding, flipped),  # altered, with the digest of the altered bytes
        page_box({**binding, "referral_id": "another-referral"}, box),  # moved onto another referral
        page_box({**binding, "requester_org_id": OTHER}, box),  # claimed by another requester
        page_box({**binding, "key_id": "0123456789abcdef"}, box),  # sealed to another key
    ]
    result = page.evaluate(OPEN_BOXES, [PARTNER, pem(dev_encryption_key(PARTNER)), boxes])
    assert (result["record"]["key_id"], result["record"]["public_key"]) == (
        directory_key.key_id,
        directory_key.public_key,
    )
    reasons = [o.get("reason") for o in result["opened"]]
    assert result["opened"][0] == {"contact": CONTACT.model_dump(mode="json")}
    assert reasons[1:] == ["unopened", "unopened", "unopened", "unopened", "other_key"]
    # the binding the page builds is the SDK's
    info = page.evaluate(
        "async (b) => (await import('/statement.js')).toHex((await import('/contact.js')).contactInfo(b))",
        {**binding},
    )
    assert bytes.fromhex(info) == contact_info(REFERRAL_ID, REQUESTER, PARTNER, directory_key.key_id)

    # another organisation's key loaded for the partner: not the key the box is sealed to
    other = page.evaluate(OPEN_BOXES, [PARTNER, pem(dev_encryption_key(OTHER)), boxes[:1]])
    assert other["record"]["key_id"] != directory_key.key_id
    assert other["opened"] == [{"reason": "other_key"}]
    # and no key at all
    none = page.evaluate(OPEN_BOXES, ["no-key-loaded-r11", None, boxes[:1]])
    assert none == {"record": None, "opened": [{"reason": "no_key"}]}


def test_a_signing_key_is_refused_as_an_encryption_key_and_the_other_way_round(page: Any) -> None:
    messages = page.evaluate(
        """async ([signing, encryption]) => {
            const k = await import('/keystore.js');
            const out = [];
            for (const [f, pem] of [[k.importEncryptionKey, signing], [k.importKey, encryption]]) {
                try { await f('someone-r11', pem); out.push('imported'); } catch (e) { out.push(e.message); }
            }
            return out;
        }""",
        [pem(dev_private_key(PARTNER)), pem(dev_encryption_key(PARTNER))],
    )
    assert messages == [
        "ce fichier n'est pas une clé de chiffrement X25519 (PEM PKCS#8)",
        "ce fichier n'est pas une clé de signature Ed25519 (PEM PKCS#8)",
    ]


#: The referral page's contact section as the template writes it, for `referral.js` to fill in.
SECTION = """async ([data, pem]) => {
    if (pem !== null) await (await import('/keystore.js')).importEncryptionKey(data.recipient_org_id, pem);
    document.body.innerHTML = '<p id="contact-status">…</p><dl id="contact-fields" hidden></dl>'
        + '<script type="application/json" id="contact-data"></script>';
    document.getElementById('contact-data').textContent = JSON.stringify(data);
    await import(`/referral.js?${Math.random()}`);   // a fresh run of the page's module
    const status = document.getElementById('contact-status');
    for (let i = 0; i < 100 && status.textContent === '…'; i++) await new Promise((r) => setTimeout(r, 50));
    const fields = document.getElementById('contact-fields');
    return {
        status: status.textContent,
        error: status.classList.contains('error'),
        hidden: fields.hidden,
        values: Object.fromEntries(
            [...fields.querySelectorAll('dd')].map((dd) => [dd.dataset.field, dd.textContent])),
        elements: fields.querySelectorAll('dd *').length,
        link: status.querySelector('a') && status.querySelector('a').getAttribute('href'),
    };
}"""


def test_the_referral_page_writes_the_contact_as_text_or_says_why_it_cannot(page: Any) -> None:
    directory_key = load_directory().encryption_key_of(PARTNER)
    assert directory_key is not None
    marked = CONTACT.model_copy(update={"referent_name": "<b>Conseillère</b> <img src=x>"})
    binding = {
        "referral_id": REFERRAL_ID,
        "requester_org_id": REQUESTER,
        "recipient_org_id": PARTNER,
        "key_id": directory_key.key_id,
    }
    box = seal_contact(
        marked,
        directory_key.key(),
        directory_key.key_id,
        referral_id=REFERRAL_ID,
        requester_org_id=REQUESTER,
        recipient_org_id=PARTNER,
    ).ciphertext
    data = {**page_box(binding, box), "key_page": f"/key?next=/referrals/{REFERRAL_ID}"}
    shown = page.evaluate(SECTION, [data, pem(dev_encryption_key(PARTNER))])
    assert (
        shown["status"] == f"Coordonnées déchiffrées dans ce navigateur avec la clé {directory_key.key_id}."
    )
    assert shown["hidden"] is False and shown["elements"] == 0  # text, never markup
    assert shown["values"]["referent_name"] == "<b>Conseillère</b> <img src=x>"
    assert shown["values"]["email"] == "—" and shown["values"]["contact_preference"] == (
        "Par l’intermédiaire du référent"
    )
    assert shown["values"]["situation"] == CONTACT.situation

    flipped = box[:-1] + bytes([box[-1] ^ 0x80])
    altered = page.evaluate(SECTION, [{**data, **page_box(binding, flipped)}, None])
    assert altered["error"] is True and altered["hidden"] is True and altered["values"] == {}
    assert altered["status"] == (
        f"Les coordonnées chiffrées pour la clé {directory_key.key_id} ne s'ouvrent pas : altérées ou "
        "destinées à une autre orientation."
    )
    absent = page.evaluate(SECTION, [{**data, "recipient_org_id": "no-key-loaded-r11"}, None])
    assert absent["status"].startswith(
        f"Coordonnées chiffrées pour la clé {directory_key.key_id} : chargez la clé de chiffrement de "
        "l'organisation."
    )
    assert absent["error"] is True and absent["link"] == data["key_page"]


def test_a_box_sealed_by_the_node_client_code_opens_in_the_inbox_browser(page: Any) -> None:
    """Issue #24: the Node.js side seals (`tests/node/contact.js`, @hpke/core, the client's own library),
    the inbox's browser code opens: the same box format whichever language sealed it."""
    require_node("@hpke/core")
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "node" / "contact.js"), str(VECTORS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    node_box = bytes.fromhex(json.loads(done.stdout)["node_box_hex"])
    vectors = json.loads(VECTORS.read_text())
    recipient, first = vectors["recipient"], vectors["sealed"][0]
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(recipient["test_private_key_hex"]))
    moved = {**first["binding"], "referral_id": "another-referral"}
    boxes = [page_box(first["binding"], node_box), page_box(moved, node_box)]
    result = page.evaluate(OPEN_BOXES, [recipient["org_id"], pem(key), boxes])
    assert node_box.hex() != first["ciphertext_hex"]  # Node's own box, not the vector's
    assert [o.get("contact") for o in result["opened"]] == [first["contact"], None]
    assert result["opened"][1]["reason"] == "unopened"
