"""`CEPBUS_ENV=production` refuses development trust material: each service started as its own process
with the development directory, keys or tokens exits 2 with one line naming what to fix, before it
touches a broker; with real material it starts (its preparation passes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.auditlog.note import Signer
from cepbus.reference.directory import clear_directory_cache, key_entry, sign_document
from cepbus.runtime.runner import CONFIGURATION_REFUSED, prepare
from cepbus.trust.keys import format_authority_key, write_private_key
from tests.support import ROOT
from tests.unit.trust.conftest import T0, production_body

#: Each service's organisation id, and the service.
SERVICE_ORGS = {f"cep-bus-{name}": name for name in ("router", "notifier", "ledger", "deadletters")}


def run_service(service: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    stores = {
        "CEPBUS_ROUTER_DATABASE_URL": f"sqlite:///{tmp_path / 'router.db'}",
        "CEPBUS_REFERRALS_DATABASE_URL": f"sqlite:///{tmp_path / 'referrals.db'}",
        "CEPBUS_LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "CEPBUS_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # nothing listens: refused before any connection
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CEPBUS_")}
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), **stores, "CEPBUS_ENV": "production", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("service", "named"),
    [
        ("router", "CEPBUS_DIRECTORY_PATH"),
        ("notifier", "CEPBUS_NOTIFIER_ID_KEY_PATH"),
        ("ledger", "CEPBUS_LEDGER_SIGNING_KEY_PATH"),
    ],
)
def test_a_service_with_development_trust_material_refuses_to_start(
    service: str, named: str, tmp_path: Path
) -> None:
    done = run_service(service, tmp_path)
    assert done.returncode == CONFIGURATION_REFUSED
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cep-bus {service}: refusing development trust material")
    assert named in lines[0] and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # no store opened, no key generated on the way


@pytest.fixture
def production_material(tmp_path: Path) -> dict[str, str]:
    """A signed directory of real keys, its pinned authority, event-id keys, a ledger key, tokens."""
    authority = Ed25519PrivateKey.generate()
    # each service's own statement key, which the directory lists for it (cepbus.runtime.identity)
    service_keys = {service: Ed25519PrivateKey.generate() for service in SERVICE_ORGS}
    listed = {org: [key_entry(org, key, T0)] for org, key in service_keys.items()}
    directory = tmp_path / "directory.json"
    directory.write_text(json.dumps(sign_document(production_body(listed), authority)))
    id_key = tmp_path / "id.key"
    id_key.write_bytes(os.urandom(32).hex().encode())
    ledger_key = tmp_path / "ledger.key"
    ledger_key.write_text(str(Signer.generate("cep-bus.test/prod")) + "\n")
    for key_file in (id_key, ledger_key):  # production reads no key file others may read
        key_file.chmod(0o600)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": []}))
    env = {
        "CEPBUS_ENV": "production",
        "CEPBUS_DIRECTORY_PATH": str(directory),
        "CEPBUS_DIRECTORY_AUTHORITY_KEY": format_authority_key(authority.public_key()),
        "CEPBUS_ROUTER_ID_KEY_PATH": str(id_key),
        "CEPBUS_NOTIFIER_ID_KEY_PATH": str(id_key),
        "CEPBUS_LEDGER_ID_KEY_PATH": str(id_key),
        "CEPBUS_LEDGER_SIGNING_KEY_PATH": str(ledger_key),
        "CEPBUS_LEDGER_ORIGIN": "cep-bus.test/prod",
        "CEPBUS_REFERRALS_TOKENS_PATH": str(tokens),
        "CEPBUS_ROUTER_DATABASE_URL": f"sqlite:///{tmp_path / 'router.db'}",
        "CEPBUS_REFERRALS_DATABASE_URL": f"sqlite:///{tmp_path / 'referrals.db'}",
        "CEPBUS_LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "CEPBUS_DEADLETTERS_DATABASE_URL": f"sqlite:///{tmp_path / 'deadletters.db'}",
        "CEPBUS_NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'notifier.db'}",
    }
    for org, key in service_keys.items():
        path = tmp_path / f"{org}.pem"
        write_private_key(key, path)
        env[f"CEPBUS_{SERVICE_ORGS[org].upper()}_STATEMENT_KEY_PATH"] = str(path)
    return env


@pytest.mark.parametrize("service", ["router", "notifier", "ledger", "deadletters"])
def test_with_real_trust_material_every_service_prepares(
    service: str, production_material: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in production_material.items():
        monkeypatch.setenv(name, value)
    clear_directory_cache()
    try:
        module = __import__(f"services.{service}.app", fromlist=["build_service"])
        definition = prepare(service, module.build_service)
        assert definition.trust_problems == []
        for hook in definition.on_stop:
            hook()
    finally:
        clear_directory_cache()
