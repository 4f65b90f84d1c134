"""The key ceremony end to end through `cep-bus keys` / `cep-bus directory`: every organisation
generates its key, the authority signs, anyone verifies; a tampered file fails; rotation and
revocation through the commands; and the attack: a forged "accepted" signed with the derivable key of
Apec is refused by the production directory the commands built."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cepbus.contract.models import OrganisationKind, ReferralRequested, new_envelope
from cepbus.reference.directory import (
    DirectoryError,
    DirectoryKey,
    clear_directory_cache,
    directory_trust_problems,
    load_directory,
)
from cepbus.sdk.contact import ContactRefused, attach_contact, open_referral_contact
from cepbus.trust.development import dev_authority_key, dev_private_key
from cepbus.trust.keys import load_encryption_key, load_private_key, parse_authority_key, write_private_key
from cepbus.trust.modes import enforce
from cepbus.trust.settings import Environment, TrustSettings
from cepbus_app.cli import app
from cepbus_app.vectors.sealed import example_contact
from tests.unit.trust.conftest import APEC, accepted, packaged_body, verdict

runner = CliRunner()
NOT_BEFORE = "2024-01-01T00:00:00Z"
ROTATION = "2025-06-01T00:00:00Z"


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_fails(result: Result, code: int, *words: str) -> None:
    """A failure is one line on stderr (no traceback), with the exit code asked."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    for word in words:
        assert word in line, line


@dataclass
class Ceremony:
    root: Path
    keys: dict[str, Path]
    entries: dict[str, dict[str, Any]]
    authority_key: Path
    pinned: str
    directory: Path

    def settings(self, path: Path | None = None) -> TrustSettings:
        return TrustSettings(
            env=Environment.PRODUCTION,
            directory_path=path or self.directory,
            directory_authority_key=self.pinned,
        )


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> Ceremony:
    """A production directory built with the commands only: a real key per organisation."""
    root = tmp_path_factory.mktemp("ceremony")
    body = packaged_body()
    keys: dict[str, Path] = {}
    entries: dict[str, dict[str, Any]] = {}
    for org_id in sorted({k["org_id"] for k in body["keys"]}):
        keys[org_id] = root / "orgs" / f"{org_id}.pem"
        done = run("keys", "generate", "--org", org_id, "--out", keys[org_id], "--not-before", NOT_BEFORE)
        assert done.exit_code == 0, done.stderr
        entries[org_id] = json.loads(done.stdout)
    # no organisation has generated an encryption key in this ceremony: none can receive a contact yet
    body.update(
        development=False, source="test production directory", keys=list(entries.values()), encryption_keys=[]
    )
    unsigned = root / "unsigned.json"
    unsigned.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")  # a bare body
    authority_key = root / "authority.pem"
    made = run("directory", "keygen", "--out", authority_key)
    assert made.exit_code == 0, made.stderr
    pinned = made.stdout.strip()
    directory = root / "directory.json"
    signed = run("directory", "sign", "--key", authority_key, "--in", unsigned, "--out", directory)
    assert signed.exit_code == 0, signed.stderr
    return Ceremony(root, keys, entries, authority_key, pinned, directory)


def test_keys_generate_writes_a_private_0600_key_and_prints_its_entry(ceremony: Ceremony) -> None:
    path = ceremony.keys[APEC]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(ceremony.authority_key.stat().st_mode) == 0o600
    entry = ceremony.entries[APEC]
    assert set(entry) == {"org_id", "key_id", "public_key", "not_before", "not_after", "revoked_at"}
    assert entry["org_id"] == APEC and entry["not_before"] == NOT_BEFORE
    assert entry["not_after"] is None and entry["revoked_at"] is None and len(entry["key_id"]) == 16
    parse_authority_key(ceremony.pinned)
    before = path.read_bytes()
    assert_fails(run("keys", "generate", "--org", APEC, "--out", path), 1, "refusing to overwrite")
    assert path.read_bytes() == before


def test_verify_accepts_the_signed_directory(ceremony: Ceremony) -> None:
    done = run("directory", "verify", "--file", ceremony.directory, "--authority", ceremony.pinned)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("OK ")
    assert f"signed by authority {parse_authority_key(ceremony.pinned).key_id}" in done.stdout
    assert "147 keys" in done.stdout  # 143 organisations and the 4 services


def test_verify_refuses_a_tampered_directory(ceremony: Ceremony, tmp_path: Path) -> None:
    document = json.loads(ceremony.directory.read_text(encoding="utf-8"))
    apec = next(k for k in document["signed"]["keys"] if k["org_id"] == APEC)
    apec["not_after"] = "2030-01-01T00:00:00Z"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document), encoding="utf-8")
    result = run("directory", "verify", "--file", tampered, "--authority", ceremony.pinned)
    assert_fails(result, 1, "does not verify")
    other = run("directory", "keygen", "--out", tmp_path / "other.pem").stdout.strip()
    assert_fails(
        run("directory", "verify", "--file", ceremony.directory, "--authority", other),
        1,
        "not signed by the pinned authority key",
    )


def test_the_forged_accepted_with_apecs_derivable_key_is_refused(ceremony: Ceremony) -> None:
    settings = ceremony.settings()
    directory = load_directory(settings)
    assert enforce(directory_trust_problems(directory, settings), settings) == []  # production is happy
    now = datetime.now(UTC)
    forged = accepted(APEC, dev_private_key(APEC))
    assert verdict(directory, forged, now) == "unknown_key"
    genuine = accepted(APEC, load_private_key(ceremony.keys[APEC]))
    found = verdict(directory, genuine, now)
    assert isinstance(found, DirectoryKey) and found.key_id == ceremony.entries[APEC]["key_id"]


def test_rotation_and_revocation_through_the_commands(ceremony: Ceremony, tmp_path: Path) -> None:
    working = tmp_path / "directory.json"
    working.write_bytes(ceremony.directory.read_bytes())
    new_key = tmp_path / "apec-2.pem"
    generated = run("keys", "generate", "--org", APEC, "--out", new_key, "--not-before", ROTATION)
    entry = tmp_path / "apec-2.json"
    entry.write_text(generated.stdout, encoding="utf-8")
    added = run("directory", "add-key", "--file", working, "--entry", entry, "--rotate")
    assert added.exit_code == 0, added.stderr
    assert "signatures dropped" in added.stderr
    assert json.loads(working.read_text(encoding="utf-8"))["signatures"] == []
    assert_fails(run("directory", "verify", "--file", working, "--authority", ceremony.pinned), 1, "unsigned")
    assert_fails(
        run("directory", "add-key", "--file", working, "--entry", entry), 1, "already in the directory"
    )
    signed = run("directory", "sign", "--key", ceremony.authority_key, "--in", working, "--out", working)
    assert signed.exit_code == 0, signed.stderr
    directory = load_directory(ceremony.settings(working))
    old, new = directory.keys_of(APEC)
    rotated_at = datetime(2025, 6, 1, tzinfo=UTC)
    assert old.not_after == rotated_at and new.not_before == rotated_at and new.not_after is None
    old_update = accepted(APEC, load_private_key(ceremony.keys[APEC]))
    new_update = accepted(APEC, load_private_key(new_key))
    assert verdict(directory, old_update, rotated_at - timedelta(days=1)) == old
    assert verdict(directory, old_update, rotated_at + timedelta(days=1)) == "key_not_valid"
    assert verdict(directory, new_update, rotated_at + timedelta(days=1)) == new

    revoke_at = "2025-07-01T00:00:00Z"
    revoked = run(
        "directory", "revoke", "--file", working, "--org", APEC, "--key-id", new.key_id, "--at", revoke_at
    )
    assert revoked.exit_code == 0, revoked.stderr
    again = run("directory", "revoke", "--file", working, "--org", APEC, "--key-id", new.key_id)
    assert_fails(again, 1, "already revoked")
    assert_fails(
        run("directory", "revoke", "--file", working, "--org", APEC, "--key-id", "0" * 16), 1, "no key"
    )
    resigned = run("directory", "sign", "--key", ceremony.authority_key, "--in", working, "--out", working)
    assert resigned.exit_code == 0, resigned.stderr
    clear_directory_cache()  # load_directory caches per (path, key): the file changed under it
    directory = load_directory(ceremony.settings(working))
    assert verdict(directory, new_update, datetime(2025, 6, 30, tzinfo=UTC)) == directory.keys_of(APEC)[1]
    assert verdict(directory, new_update, datetime(2025, 7, 1, tzinfo=UTC)) == "key_not_valid"


def test_bad_inputs_are_one_line_errors(ceremony: Ceremony, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json", encoding="utf-8")
    floats = tmp_path / "floats.json"
    body = json.loads(ceremony.directory.read_text(encoding="utf-8"))["signed"]
    body["partners"][0]["score"] = 0.5
    floats.write_text(json.dumps(body), encoding="utf-8")
    entry = tmp_path / "entry.json"
    entry.write_text(json.dumps({**ceremony.entries[APEC], "key_id": "0" * 16}), encoding="utf-8")
    dev_authority = tmp_path / "dev-authority.pem"
    write_private_key(dev_authority_key(), dev_authority)
    out = tmp_path / "out.json"
    key, directory = ceremony.authority_key, ceremony.directory
    cases: list[tuple[list[str | Path], int, str]] = [
        (["keys", "generate", "--org", "Not An Id", "--out", tmp_path / "k.pem"], 2, "--org"),
        (
            ["keys", "generate", "--org", APEC, "--out", tmp_path / "k.pem", "--not-before", "tomorrow"],
            2,
            "ISO",
        ),
        (["directory", "verify", "--file", directory, "--authority", "nope"], 2, "--authority"),
        (
            ["directory", "verify", "--file", tmp_path / "missing.json", "--authority", ceremony.pinned],
            1,
            "missing",
        ),
        (["directory", "verify", "--file", garbage, "--authority", ceremony.pinned], 1, "not JSON"),
        (
            ["directory", "sign", "--key", garbage, "--in", directory, "--out", out],
            1,
            "not an unencrypted PEM",
        ),
        (["directory", "sign", "--key", key, "--in", floats, "--out", out], 1, "floats are not allowed"),
        (
            ["directory", "sign", "--key", dev_authority, "--in", directory, "--out", out],
            1,
            "development authority",
        ),
        (["directory", "add-key", "--file", directory, "--entry", entry], 1, "does not match"),
        (["directory", "add-key", "--file", directory, "--entry", garbage], 1, "not JSON"),
        (
            ["directory", "revoke", "--file", directory, "--org", APEC, "--key-id", "x", "--at", "2025"],
            2,
            "--at",
        ),
    ]
    for args, code, word in cases:
        assert_fails(run(*args), code, word)
    assert not out.exists()


def test_a_key_entry_for_an_unknown_organisation_is_refused(ceremony: Ceremony, tmp_path: Path) -> None:
    working = tmp_path / "directory.json"
    working.write_bytes(ceremony.directory.read_bytes())
    generated = run("keys", "generate", "--org", "nobody-r11", "--out", tmp_path / "nobody.pem")
    entry = tmp_path / "nobody.json"
    entry.write_text(generated.stdout, encoding="utf-8")
    assert_fails(run("directory", "add-key", "--file", working, "--entry", entry), 1, "unknown organisations")
    assert working.read_bytes() == ceremony.directory.read_bytes()  # untouched


def test_loading_a_production_directory_without_its_signature_fails(
    ceremony: Ceremony, tmp_path: Path
) -> None:
    stripped = tmp_path / "stripped.json"
    document = json.loads(ceremony.directory.read_text(encoding="utf-8"))
    stripped.write_text(json.dumps({"signed": document["signed"], "signatures": []}), encoding="utf-8")
    with pytest.raises(DirectoryError, match="unsigned"):
        load_directory(ceremony.settings(stripped))


def serial_of(path: Path) -> int:
    return int(json.loads(path.read_text(encoding="utf-8"))["signed"]["serial"])


def test_every_edit_is_a_new_version_and_renew_moves_the_expiry(ceremony: Ceremony, tmp_path: Path) -> None:
    working = tmp_path / "directory.json"
    working.write_bytes(ceremony.directory.read_bytes())
    first = serial_of(working)
    router_key = tmp_path / "router-2.pem"
    generated = run("keys", "generate", "--org", APEC, "--out", router_key, "--not-before", ROTATION)
    entry = tmp_path / "apec-2.json"
    entry.write_text(generated.stdout, encoding="utf-8")
    assert run("directory", "add-key", "--file", working, "--entry", entry).exit_code == 0
    assert serial_of(working) == first + 1
    renewed = run("directory", "renew", "--file", working, "--expires-in", "30")
    assert renewed.exit_code == 0, renewed.stderr
    assert serial_of(working) == first + 2
    expires = datetime.fromisoformat(
        json.loads(working.read_text())["signed"]["expires_at"].replace("Z", "+00:00")
    )
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert (
        run("directory", "sign", "--key", ceremony.authority_key, "--in", working, "--out", working).exit_code
        == 0
    )
    verified = run("directory", "verify", "--file", working, "--authority", ceremony.pinned)
    assert verified.exit_code == 0 and f"serial {first + 2}" in verified.stdout
    assert_fails(run("directory", "renew", "--file", working, "--expires-in", "0"), 2, "at least 1 day")


def test_an_expired_directory_does_not_verify(ceremony: Ceremony, tmp_path: Path) -> None:
    document = json.loads(ceremony.directory.read_text(encoding="utf-8"))
    document["signed"].update(issued_at="2024-01-01T00:00:00Z", expires_at="2024-02-01T00:00:00Z")
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(document), encoding="utf-8")
    assert (
        run("directory", "sign", "--key", ceremony.authority_key, "--in", stale, "--out", stale).exit_code
        == 0
    )
    assert_fails(run("directory", "verify", "--file", stale, "--authority", ceremony.pinned), 1, "expired")


def test_a_format_2_directory_is_upgraded_and_its_services_listed(ceremony: Ceremony, tmp_path: Path) -> None:
    body = json.loads(ceremony.directory.read_text(encoding="utf-8"))["signed"]
    services = body.pop("services")
    for field in ("serial", "expires_at"):
        body.pop(field)
    service_ids = {s["org_id"] for s in services}
    body["keys"] = [k for k in body["keys"] if k["org_id"] not in service_ids]
    body["format"] = "cep-bus-directory/2"
    old = tmp_path / "v2.json"
    old.write_text(json.dumps({"signed": body, "signatures": []}), encoding="utf-8")
    assert_fails(
        run("directory", "verify", "--file", old, "--authority", ceremony.pinned), 1, "directory upgrade"
    )
    new = tmp_path / "v3.json"
    upgraded = run("directory", "upgrade", "--in", old, "--out", new)
    assert upgraded.exit_code == 0, upgraded.stderr
    assert serial_of(new) == 1
    for service in services:
        entry = tmp_path / f"{service['org_id']}.json"
        entry.write_text(json.dumps(ceremony.entries[service["org_id"]]), encoding="utf-8")
        listed = run(
            "directory",
            "add-service",
            "--file",
            new,
            "--org",
            service["org_id"],
            "--role",
            service["role"],
            "--entry",
            entry,
        )
        assert listed.exit_code == 0, listed.stderr
    assert serial_of(new) == 1 + len(services)
    assert_fails(
        run(
            "directory",
            "add-service",
            "--file",
            new,
            "--org",
            "cep-bus-x",
            "--role",
            "janitor",
            "--entry",
            entry,
        ),
        2,
        "--role",
    )
    assert run("directory", "sign", "--key", ceremony.authority_key, "--in", new, "--out", new).exit_code == 0
    clear_directory_cache()
    directory = load_directory(ceremony.settings(new))
    assert {s.org_id for s in directory.services.values()} == service_ids


PARTNER = "transitions-pro-r84"


def test_an_encryption_key_is_generated_listed_used_and_revoked_with_the_commands(
    ceremony: Ceremony, tmp_path: Path
) -> None:
    """Issue #24: a partner generates its X25519 key (`keys generate --encryption`), the authority lists it
    (`directory add-key --encryption`) and signs; in production the requester's SDK seals a contact to it
    and the partner opens it with its key file; once revoked, the SDK refuses to seal to it."""
    working = tmp_path / "unsigned.json"
    working.write_text((ceremony.root / "unsigned.json").read_text(encoding="utf-8"), encoding="utf-8")
    key_file = tmp_path / "partner-encryption.pem"
    made = run(
        "keys", "generate", "--encryption", "--org", PARTNER, "--out", key_file, "--not-before", NOT_BEFORE
    )
    assert made.exit_code == 0, made.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and "add-key --encryption" in made.stderr
    entry_file = tmp_path / "entry.json"
    entry_file.write_text(made.stdout, encoding="utf-8")
    assert_fails(run("directory", "add-key", "--file", working, "--entry", entry_file), 1, "not a key entry")
    added = run("directory", "add-key", "--encryption", "--file", working, "--entry", entry_file)
    assert added.exit_code == 0, added.stderr
    signed = tmp_path / "directory.json"
    done = run("directory", "sign", "--key", ceremony.authority_key, "--in", working, "--out", signed)
    assert done.exit_code == 0, done.stderr
    directory = load_directory(ceremony.settings(signed))
    assert (
        enforce(directory_trust_problems(directory, ceremony.settings(signed)), ceremony.settings(signed))
        == []
    )
    listed = directory.encryption_key_of(PARTNER)
    assert listed is not None and listed.key_id == json.loads(made.stdout)["key_id"]
    referral = ReferralRequested(
        envelope=new_envelope(ReferralRequested, producer_org_id="cep-r84", person_pseudonym="p-ceremony"),
        referral_id="ref-ceremony",
        requester_org_id="cep-r84",
        recipient_org_id=PARTNER,
        recipient_kind=OrganisationKind.TRANSITIONS_PRO,
        region_code="84",
        reason="projet de transition",
        consent_to_share=True,
    )
    sealed = attach_contact(referral, example_contact(), directory)
    assert open_referral_contact(sealed, load_encryption_key(key_file, production=True)) == example_contact()
    revoked = run("directory", "revoke", "--encryption", "--file", working, "--org", PARTNER, "--key-id",
                  listed.key_id, "--at", NOT_BEFORE)  # fmt: skip
    assert revoked.exit_code == 0, revoked.stderr
    again = tmp_path / "directory-2.json"
    assert (
        run("directory", "sign", "--key", ceremony.authority_key, "--in", working, "--out", again).exit_code
        == 0
    )
    with pytest.raises(ContactRefused, match=f"{PARTNER} has no encryption key valid at .*{listed.key_id}"):
        attach_contact(referral, example_contact(), load_directory(ceremony.settings(again)))
