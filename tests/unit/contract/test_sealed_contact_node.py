"""The sealed-contact vectors (schemas/vectors/sealed-contacts.json) hold in a second language:
tests/node/contact.js opens every sealed box with @hpke/core (the library of the browser inbox) and
refuses every box that must not open; a box sealed by Node opens in Python (cryptography's HPKE); and a
box with one bit altered (its SHA-256 updated, so only the AEAD can tell) makes the Node check fail."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cepbus.contract.contact import contact_info
from tests.support import ROOT
from tests.support.node import NODE_DIR, require_node

VECTORS_FILE = ROOT / "schemas" / "vectors" / "sealed-contacts.json"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)


def _vectors() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return document


def run_contact_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(NODE_DIR / "contact.js"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _node_summary() -> dict[str, Any]:
    require_node("@hpke/core")
    done = run_contact_check(VECTORS_FILE)
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_node_opens_every_sealed_contact_and_refuses_the_others() -> None:
    vectors = _vectors()
    summary = _node_summary()
    assert summary["opened"] == len(vectors["sealed"]) >= 1
    assert summary["refused"] == len(vectors["must_not_open"]) >= 1


def test_a_box_sealed_in_node_opens_in_python() -> None:
    vectors = _vectors()
    first = vectors["sealed"][0]
    summary = _node_summary()
    info = bytes.fromhex(summary["info_hex"])
    assert info == bytes.fromhex(first["info_hex"]) == contact_info(**first["binding"])
    box = bytes.fromhex(summary["node_box_hex"])
    assert box != bytes.fromhex(first["ciphertext_hex"])  # fresh: a new ephemeral key
    private_key = X25519PrivateKey.from_private_bytes(
        bytes.fromhex(vectors["recipient"]["test_private_key_hex"])
    )
    assert SUITE.decrypt(box, private_key, info=info) == bytes.fromhex(first["plaintext_hex"])


def test_node_fails_on_a_box_with_one_bit_altered(tmp_path: Path) -> None:
    require_node("@hpke/core")
    vectors = _vectors()
    first = vectors["sealed"][0]
    box = bytearray(bytes.fromhex(first["ciphertext_hex"]))
    box[-1] ^= 0x01  # in the AEAD tag, past the 32 bytes of enc
    first["ciphertext_hex"] = box.hex()
    first["ciphertext_sha256_hex"] = hashlib.sha256(box).hexdigest()  # only the AEAD can tell
    altered = tmp_path / "sealed-contacts.json"
    altered.write_text(json.dumps(vectors, ensure_ascii=False), encoding="utf-8")
    failed = run_contact_check(altered)
    assert failed.returncode != 0 and failed.stdout == ""
    lines = failed.stderr.splitlines()
    assert len(lines) == 1, failed.stderr
    assert first["name"] in lines[0] and "does not open" in lines[0]
