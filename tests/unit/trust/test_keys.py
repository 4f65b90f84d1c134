"""Development material is detectable, key files are private and never overwritten, key ids and the
pinned authority key are well defined and parsed strictly."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.reference.directory import load_directory
from cepbus.trust.development import (
    dev_authority_key,
    dev_private_key,
    is_development_authority_key,
    is_development_key,
)
from cepbus.trust.keys import (
    AuthorityKey,
    format_authority_key,
    key_id,
    load_private_key,
    parse_authority_key,
    raw_public_key,
    write_private_key,
)


def test_every_packaged_key_is_a_detectable_development_key() -> None:
    directory = load_directory()
    keys = directory.all_keys()
    assert len(keys) == len(directory.org_ids()) + len(directory.services)  # one each, services too
    assert all(is_development_key(k.org_id, k.raw) for k in keys)
    assert all(is_development_key(k.org_id, k.public_key) for k in keys)  # base64 form too
    assert is_development_key("apec-r11", dev_private_key("apec-r11").public_key())
    assert not is_development_key("apec-r11", dev_private_key("apec-r24").public_key())
    assert not is_development_key("apec-r11", Ed25519PrivateKey.generate().public_key())
    assert not is_development_key("apec-r11", "not base64!")


def test_the_development_authority_is_derivable_and_detected() -> None:
    assert raw_public_key(dev_authority_key()) == raw_public_key(dev_authority_key())
    assert is_development_authority_key(dev_authority_key().public_key())
    assert not is_development_authority_key(Ed25519PrivateKey.generate().public_key())
    assert raw_public_key(dev_authority_key()) != raw_public_key(dev_private_key("cep-bus-directory"))


def test_key_id_binds_the_key_to_its_organisation() -> None:
    raw = raw_public_key(Ed25519PrivateKey.generate())
    expected = hashlib.sha256(b"cep-bus/partner-key/v1\napec-r11\n" + raw).hexdigest()[:16]
    assert key_id("apec-r11", raw) == expected and len(expected) == 16
    assert key_id("apec-r24", raw) != expected
    with pytest.raises(ValueError, match="32 bytes"):
        key_id("apec-r11", raw[:31])


def test_private_key_files_are_0600_and_never_overwritten(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "keys" / "apec.pem"
    write_private_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert raw_public_key(load_private_key(path)) == raw_public_key(key)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_private_key(Ed25519PrivateKey.generate(), path)
    assert path.read_bytes() == before


def test_load_private_key_refuses_what_is_not_an_ed25519_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "ec.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        load_private_key(other)


def test_pinned_authority_key_round_trips() -> None:
    key = Ed25519PrivateKey.generate()
    pinned = format_authority_key(key)
    prefix, kid, b64 = pinned.split("+", 2)
    assert prefix == "cep-bus-directory" and len(kid) == 16
    assert base64.b64decode(b64) == raw_public_key(key)
    parsed = parse_authority_key(f"  {pinned}\n")
    assert parsed == AuthorityKey.of(key) and parsed.pinned() == pinned


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda s: s.replace("cep-bus-directory", "cep-bus-dir"), "reads cep-bus-directory"),
        (lambda s: s.split("+", 1)[1], "reads cep-bus-directory"),
        (lambda s: s.replace("+", "+ZZ", 1), "16 lowercase hex"),
        (lambda s: s[:-8], "base64|32 bytes"),
        (
            lambda s: "+".join(s.split("+", 2)[:2]) + "+" + base64.b64encode(b"x" * 32).decode(),
            "does not match",
        ),
    ],
)
def test_a_malformed_pinned_key_says_why(mangle: object, message: str) -> None:
    pinned = format_authority_key(Ed25519PrivateKey.generate())
    with pytest.raises(ValueError, match=message):
        parse_authority_key(mangle(pinned))  # type: ignore[operator]
