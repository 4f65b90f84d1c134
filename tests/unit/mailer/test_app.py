"""The mailer as a service: it reads exactly what its wiring declares (every organisation's inbox, the
router's verdicts), refuses a bad address book in one line with exit code 2 before touching a broker,
refuses development addresses in production, and starts in production with real material (listed in
the signed directory as `cep-bus-mailer`, in the notifier's role)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.contract import wiring
from cepbus.contract.topics import REFERRAL_VERDICT, referral_inbox
from cepbus.reference.directory import clear_directory_cache, key_entry, load_directory, sign_document
from cepbus.runtime.runner import CONFIGURATION_REFUSED, prepare
from cepbus.trust.keys import format_authority_key, write_private_key
from services.mailer.app import SERVICE, build_service
from services.mailer.kinds import KINDS
from services.mailer.settings import MailerSettings
from tests.support import ROOT
from tests.unit.trust.conftest import T0, production_body


def test_it_reads_every_inbox_and_the_verdicts_as_its_wiring_declares(tmp_path: Path) -> None:
    definition = build_service(MailerSettings(database_url=f"sqlite:///{tmp_path / 'mailer.db'}"))
    try:
        read = set(definition.topics_read())
        inboxes = {referral_inbox(org).name for org in load_directory().org_ids()}
        assert inboxes < read and REFERRAL_VERDICT.name in read
        assert all(wiring.SERVICES[SERVICE].may_read(topic) for topic in read)
        assert set(wiring.SERVICES[SERVICE].writes) == {"cep.deadletter"}
        assert definition.settings.group_id.startswith(wiring.SERVICES[SERVICE].groups[0].rstrip("*"))
        assert [t.name for t in definition.timers] == ["send"] and definition.outboxes() == []
        # the route table reads exactly the topics of the kinds in the table of kinds
        wired = [kind.topic for kind in KINDS.values()]
        assert all(any(_matches(pattern, topic) for pattern in wired) for topic in read)
        assert all(any(_matches(pattern, topic) for topic in read) for pattern in wired)
        assert any("CEPBUS_MAILER_ADDRESSES_PATH" in str(p) for p in definition.trust_problems)
    finally:
        for hook in definition.on_stop:
            hook()


def _matches(pattern: str, topic: str) -> bool:
    return topic.startswith(pattern[:-1]) if pattern.endswith("*") else topic == pattern


def run_mailer(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CEPBUS_")}
    return subprocess.run(
        [sys.executable, "-m", "services.mailer"],
        cwd=tmp_path,
        env={
            **clean,
            "PYTHONPATH": str(ROOT),
            "CEPBUS_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # nothing listens: refused before any connection
            "CEPBUS_MAILER_DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_address_that_is_not_one_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    book = tmp_path / "addresses.json"
    book.write_text(json.dumps({"cep-r84": ["orientations@cep.example.org", "jean.dupont chez cep"]}))
    done = run_mailer(tmp_path, CEPBUS_MAILER_ADDRESSES_PATH=str(book))
    assert done.returncode == CONFIGURATION_REFUSED
    [line] = done.stderr.strip().splitlines()
    assert line == f"cep-bus mailer: {book}: address 2 of 'cep-r84' is not an email address"
    assert "Traceback" not in done.stderr and "jean.dupont" not in done.stderr
    assert not (tmp_path / "mailer.db").exists()  # refused before its store was opened


def test_production_refuses_development_addresses(tmp_path: Path) -> None:
    done = run_mailer(tmp_path, CEPBUS_ENV="production")
    assert done.returncode == CONFIGURATION_REFUSED
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("cep-bus mailer: refusing development trust material")
    assert "CEPBUS_MAILER_ADDRESSES_PATH" in line and "Traceback" not in done.stderr


def test_with_real_material_it_prepares_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority, key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    body = production_body()
    body["services"].append({"org_id": "cep-bus-mailer", "role": "notifier", "name": "cep-bus — courriels"})
    body["keys"].append(key_entry("cep-bus-mailer", key, T0))
    directory = tmp_path / "directory.json"
    directory.write_text(json.dumps(sign_document(body, authority)))
    key_path = tmp_path / "mailer.pem"
    write_private_key(key, key_path)
    book = tmp_path / "addresses.json"
    book.write_text(json.dumps({"transitions-pro-r84": ["accueil@tp-ara.example.org"]}))
    password = tmp_path / "smtp-password"
    password.write_text("s3cret\n")
    env = {
        "CEPBUS_ENV": "production",
        "CEPBUS_DIRECTORY_PATH": str(directory),
        "CEPBUS_DIRECTORY_AUTHORITY_KEY": format_authority_key(authority.public_key()),
        "CEPBUS_MAILER_SERVICE_ORG_ID": "cep-bus-mailer",
        "CEPBUS_MAILER_STATEMENT_KEY_PATH": str(key_path),
        "CEPBUS_MAILER_ADDRESSES_PATH": str(book),
        "CEPBUS_MAILER_INBOX_BASE_URL": "https://inbox.cep-bus.example.org",
        "CEPBUS_MAILER_SMTP_STARTTLS": "true",
        "CEPBUS_MAILER_SMTP_USERNAME": "cep-bus",
        "CEPBUS_MAILER_SMTP_PASSWORD_PATH": str(password),
        "CEPBUS_MAILER_DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clear_directory_cache()
    try:
        definition = prepare(SERVICE, build_service)
        assert definition.trust_problems == []
        assert definition.producer_org_id == "cep-bus-mailer"
        for hook in definition.on_stop:
            hook()
    finally:
        clear_directory_cache()
