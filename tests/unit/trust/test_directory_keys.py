"""Keys over time: rotation keeps history verifiable and stops the old key signing anything new,
revocation cuts a key from a time on; signed directories: a tampered body, another authority, floats
and duplicate JSON keys are refused; the example directory is listed as a trust problem."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.reference.directory import (
    DirectoryError,
    DirectoryKey,
    canonical_bytes,
    directory_trust_problems,
    key_entry,
    load_directory,
    load_directory_from,
    read_document,
    sign_document,
)
from cepbus.trust.development import dev_authority_key, dev_private_key
from cepbus.trust.keys import format_authority_key
from cepbus.trust.modes import TrustError, enforce
from cepbus.trust.settings import Environment, TrustSettings
from tests.unit.trust.conftest import APEC, T0, accepted, build, packaged_body, production_body, verdict

ROTATED = datetime(2025, 6, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def rotated(old: Ed25519PrivateKey, new: Ed25519PrivateKey, **new_key: Any) -> dict[str, Any]:
    return production_body(
        {
            APEC: [
                key_entry(APEC, old, T0, not_after=ROTATED),
                key_entry(APEC, new, ROTATED, **new_key),
            ]
        }
    )


def test_rotation_keeps_history_and_retires_the_old_key() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    directory = build(rotated(old, new))
    before, after = ROTATED - timedelta(days=30), ROTATED + SECOND
    old_entry, new_entry = directory.keys_of(APEC)
    assert [k.not_before for k in directory.keys_of(APEC)] == [T0, ROTATED]
    assert [k.key_id for k in directory.keys_valid_at(APEC, before)] == [old_entry.key_id]
    assert [k.key_id for k in directory.keys_valid_at(APEC, ROTATED)] == [new_entry.key_id]
    old_update, new_update = accepted(APEC, old), accepted(APEC, new)
    # an update recorded before the rotation still verifies with the old key, after it
    assert verdict(directory, old_update, before) == old_entry
    # a new update verifies with the new key
    assert verdict(directory, new_update, after) == new_entry
    # the old key signs nothing recorded from its not_after on, the new one nothing before its not_before
    assert verdict(directory, old_update, ROTATED) == "key_not_valid"
    assert verdict(directory, old_update, after) == "key_not_valid"
    assert verdict(directory, new_update, before) == "key_not_valid"
    # the compatibility accessor is the newest currently valid key
    assert directory.public_key(APEC).public_bytes_raw() == new.public_key().public_bytes_raw()


def test_verification_uses_the_recording_time_not_the_claimed_time() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    directory = build(rotated(old, new))
    backdated = accepted(APEC, old)  # occurred_at (MONDAY, 2026) is the sender's claim: irrelevant
    assert verdict(directory, backdated, ROTATED + timedelta(days=1)) == "key_not_valid"
    assert verdict(directory, backdated, ROTATED - timedelta(days=1)) == directory.keys_of(APEC)[0]


def test_revocation_cuts_a_key_from_its_time_on() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    revoked = ROTATED + timedelta(days=10)
    directory = build(rotated(old, new, revoked_at=revoked))
    update = accepted(APEC, new)
    assert verdict(directory, update, revoked - SECOND) == directory.keys_of(APEC)[1]
    assert verdict(directory, update, revoked) == "key_not_valid"
    assert verdict(directory, update, revoked + timedelta(days=1)) == "key_not_valid"
    assert directory.keys_valid_at(APEC, revoked) == []
    with pytest.raises(DirectoryError, match="no key valid"):
        directory.public_key(APEC)


def test_the_edge_refuses_what_proves_nothing() -> None:
    key = Ed25519PrivateKey.generate()
    directory = build(production_body({APEC: [key_entry(APEC, key, T0)]}))
    now = datetime.now(UTC)
    good = accepted(APEC, key)
    assert verdict(directory, good, now) == directory.keys_of(APEC)[0]
    assert verdict(directory, good.unsigned(), now) == "unsigned"
    assert verdict(directory, good.altered(note="altered"), now) == "bad_signature"
    assert verdict(directory, accepted("not-in-directory", key), now) == "unknown_key"
    assert verdict(directory, good, T0 - SECOND) == "key_not_valid"
    with pytest.raises(ValueError, match="timezone"):
        verdict(directory, good, datetime(2026, 1, 1))


def test_the_forged_accepted_with_the_derivable_apec_key_is_refused() -> None:
    directory = build(production_body())
    forged = accepted(APEC, dev_private_key(APEC))
    assert verdict(directory, forged, datetime.now(UTC)) == "unknown_key"
    # ...while the packaged example directory would take it: that is why production refuses it
    assert isinstance(verdict(load_directory(), forged, datetime.now(UTC)), DirectoryKey)


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (
            lambda b: b["keys"].pop(next(i for i, k in enumerate(b["keys"]) if k["org_id"] == APEC)),
            "without a key",
        ),
        (lambda b: b["keys"][0].__setitem__("key_id", "0" * 16), "does not match"),
        (lambda b: b["keys"][0].__setitem__("public_key", "AAAA"), "32 bytes"),
        (lambda b: b["keys"][0].__setitem__("not_before", "2024-01-01T00:00:00"), "timezone"),
        (lambda b: b["keys"][0].__setitem__("not_after", "2019-01-01T00:00:00Z"), "not after not_before"),
        (lambda b: b["keys"].append(dict(b["keys"][0])), "duplicate key ids"),
        (
            lambda b: b["keys"].append(
                key_entry("unknown-org", Ed25519PrivateKey.generate(), datetime.now(UTC))
            ),
            "keys of unknown organisations",
        ),
        (lambda b: b.__setitem__("format", "cep-bus-directory/1"), "format"),
        (lambda b: b.__setitem__("development", "yes"), "development"),
    ],
)
def test_bad_keys_fail_loudly(breaks: Any, message: str) -> None:
    body = production_body()
    breaks(body)
    with pytest.raises(DirectoryError, match=message):
        build({"signed": body, "signatures": []})


def test_one_public_key_for_two_organisations_is_refused() -> None:
    shared = Ed25519PrivateKey.generate()
    body = production_body(
        {APEC: [key_entry(APEC, shared, T0)], "apec-r24": [key_entry("apec-r24", shared, T0)]}
    )
    with pytest.raises(DirectoryError, match="one public key for several organisations"):
        build(body)


def test_floats_and_duplicate_json_keys_are_refused() -> None:
    body = production_body()
    body["partners"][0]["weight"] = 1.5
    with pytest.raises(DirectoryError, match="floats are not allowed"):
        canonical_bytes(body)
    with pytest.raises(DirectoryError, match="floats are not allowed"):
        build({"signed": body, "signatures": []})
    with pytest.raises(DirectoryError, match="duplicate JSON key"):
        read_document('{"signed": {}, "signed": {}}')


def test_the_old_format_says_how_to_migrate() -> None:
    with pytest.raises(DirectoryError, match="format 1"):
        build({"version": "2026.1", "partners": [], "public_keys": {}})


# -- signatures and loading ---------------------------------------------------------------------


def write_signed(tmp_path: Path, authority: Ed25519PrivateKey, body: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "directory.json"
    path.write_text(json.dumps(sign_document(body or production_body(), authority)), encoding="utf-8")
    return path


def settings(
    path: Path | None, authority: Ed25519PrivateKey | None, env: str = "development"
) -> TrustSettings:
    return TrustSettings(
        env=Environment(env),
        directory_path=path,
        directory_authority_key=format_authority_key(authority) if authority else None,
    )


def test_a_signed_directory_loads_with_its_pinned_authority(tmp_path: Path) -> None:
    authority = Ed25519PrivateKey.generate()
    path = write_signed(tmp_path, authority)
    directory = load_directory(settings(path, authority, "production"))
    assert not directory.development and directory.signed
    assert directory.verified_by == directory.signatures[0]
    assert load_directory(settings(path, authority)) is directory  # cached per (path, key)
    assert enforce(directory_trust_problems(directory, settings(path, authority, "production"))) == []


def test_a_tampered_body_is_refused(tmp_path: Path) -> None:
    authority = Ed25519PrivateKey.generate()
    path = write_signed(tmp_path, authority)
    document = json.loads(path.read_text(encoding="utf-8"))
    attacker = Ed25519PrivateKey.generate()
    apec = next(k for k in document["signed"]["keys"] if k["org_id"] == APEC)
    apec.update(key_entry(APEC, attacker, T0))  # swap Apec's key for the attacker's
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(DirectoryError, match=r"does not verify.*altered"):
        load_directory(settings(path, authority))
    # without a pinned key it loads, and the trust problems say the signature was not checked
    unchecked = load_directory(settings(path, None))
    assert any(
        "no directory authority key" in p.what
        for p in directory_trust_problems(unchecked, settings(path, None))
    )


def test_a_directory_signed_by_another_authority_is_refused(tmp_path: Path) -> None:
    pinned, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = write_signed(tmp_path, other)
    with pytest.raises(DirectoryError, match="not signed by the pinned authority key"):
        load_directory(settings(path, pinned))
    unsigned = tmp_path / "unsigned.json"
    unsigned.write_text(json.dumps({"signed": production_body(), "signatures": []}), encoding="utf-8")
    with pytest.raises(DirectoryError, match="unsigned"):
        load_directory_from(unsigned, authority_key=format_authority_key(pinned))


def test_a_bad_pinned_key_or_missing_file_is_a_directory_error(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="CEPBUS_DIRECTORY_AUTHORITY_KEY"):
        load_directory(TrustSettings(directory_authority_key="cep-bus-directory+nope"))
    with pytest.raises(DirectoryError, match=r"missing\.json"):
        load_directory(TrustSettings(directory_path=tmp_path / "missing.json"))


def test_the_packaged_directory_is_development_signed_by_the_development_authority() -> None:
    body = packaged_body()
    assert body["development"] is True and "INSECURE" in body["source"]
    assert {k["not_before"] for k in body["keys"]} == {"2020-01-01T00:00:00Z"}
    directory = load_directory(
        TrustSettings(directory_authority_key=format_authority_key(dev_authority_key()))
    )
    assert directory.development and directory.verified_by is not None


def test_trust_problems_list_the_example_directory_and_production_refuses_it() -> None:
    dev = settings(None, None)
    whats = [p.what for p in directory_trust_problems(load_directory(dev), dev)]
    assert any("packaged example" in w for w in whats)
    assert any("no directory authority key" in w for w in whats)
    assert any("147 organisations have a derivable development key" in w for w in whats)  # and the 4 services
    assert all(p.fix for p in directory_trust_problems(load_directory(dev), dev))
    assert enforce(directory_trust_problems(load_directory(dev), dev), dev)  # development: only warned
    prod = settings(None, None, "production")
    with pytest.raises(TrustError, match="CEPBUS_DIRECTORY_PATH"):
        enforce(directory_trust_problems(load_directory(prod), prod), prod)


def test_trust_problems_of_a_copied_development_directory(tmp_path: Path) -> None:
    path = tmp_path / "copy.json"
    path.write_text(json.dumps({"signed": packaged_body(), "signatures": []}), encoding="utf-8")
    pinned = settings(path, dev_authority_key())
    unsigned = load_directory(settings(path, None))
    whats = " | ".join(p.what for p in directory_trust_problems(unsigned, pinned))
    assert "marked development" in whats
    assert "unsigned" in whats
    assert "INSECURE development authority" in whats
    assert "derivable development key" in whats
