"""An auditor installs `cep-bus[audit]` and nothing else: in a fresh venv from this checkout's wheel
(tests/support/venvs.py), `cep-bus-audit` verifies a bundle exported by the ledger service, refuses a
tampered one, and renders the report as JSON and PDF, without any stream runtime, service or database
driver installed or loaded (the log library, `cepbus/auditlog`, is all it runs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cepbus.auditlog.bundle import export_bundle
from cepbus.auditlog.note import Signer
from cepbus.reference import load_reference
from cepbus_app.demo.simulator import Simulator
from tests.support.ledger import ledger_record, open_ledger
from tests.support.venvs import fresh_venv, installed_distributions, pip_env, python_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # a cold pip cache downloads the PDF stack

#: what an auditor's venv must not hold (pip's normalised names)
NOT_FOR_AN_AUDITOR = ("faust-streaming", "confluent-kafka", "psycopg", "psycopg-binary", "fastapi", "uvicorn")
#: what its command must not load
NOT_LOADED = ("faust", "mode", "aiokafka", "confluent_kafka", "psycopg", "fastapi", "services", "cepbus_app")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ledger of simulated intakes (the service's store), signed and exported as a bundle."""
    workdir = tmp_path_factory.mktemp("auditor")
    signer = Signer.generate("cep-bus.test/auditor")
    intakes = list(Simulator(load_reference(), seed=7).intakes(40))
    with open_ledger(f"sqlite:///{workdir / 'ledger.db'}") as store:
        store.append_checked([ledger_record(event, signed=True) for event in intakes])
        checkpoint = store.checkpoint(signer)
        assert checkpoint is not None
        document = export_bundle(store, checkpoint, signer.verifier())
    bundle = workdir / "bundle.json"
    bundle.write_text(json.dumps(document))
    tampered = workdir / "tampered.json"
    entry = document["entries"][3]
    entry["content"]["facts"]["region_code"] = (
        "84" if entry["content"]["facts"].get("region_code") != "84" else "11"
    )
    tampered.write_text(json.dumps(document))
    return {
        "dir": workdir,
        "bundle": bundle,
        "tampered": tampered,
        "key": str(signer.verifier()),
        "n": len(intakes),
    }


def audit(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`cep-bus-audit ARGS` in the auditor's venv, every imported module listed on stderr (-X importtime)."""
    code = "import sys; from cepbus.auditlog.cli import main; sys.argv[0] = 'cep-bus-audit'; main()"
    return subprocess.run(
        [str(python_of(venv)), "-X", "importtime", "-c", code, *args],
        env=pip_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def loaded(stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_the_audit_extra_verifies_and_reports_with_no_service_installed(exported: dict[str, Any]) -> None:
    venv = fresh_venv("audit")
    installed = installed_distributions(venv)
    assert {"matplotlib", "weasyprint", "typer"} <= set(installed)
    assert not set(NOT_FOR_AN_AUDITOR) & set(installed), sorted(set(NOT_FOR_AN_AUDITOR) & set(installed))

    verified = audit(venv, "verify", str(exported["bundle"]), "--key", exported["key"])
    assert verified.returncode == 0, verified.stderr[-2000:]
    # the intakes after the directory version the ledger logged first; each intake's statement checked
    assert f"bundle verified: {exported['n'] + 1} entries" in verified.stdout
    assert f"authors: {exported['n']} statements signed by their producer's key" in verified.stdout
    assert "cepbus" in loaded(verified.stderr) and not loaded(verified.stderr) & set(NOT_LOADED)

    refused = audit(venv, "verify", str(exported["tampered"]), "--key", exported["key"])
    assert refused.returncode == 1 and "entry 3: content does not match its leaf" in refused.stderr
    no_key = audit(venv, "verify", str(exported["bundle"]))
    assert no_key.returncode == 2 and "no pinned key" in no_key.stderr

    as_json = audit(venv, "report", str(exported["bundle"]), "--key", exported["key"], "--format", "json")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    report = json.loads(as_json.stdout)
    assert report["intakes"]["total"] == exported["n"] and report["source"]["verification"]["ok"] is True

    pdf = exported["dir"] / "audit.pdf"
    rendered = audit(venv, "report", str(exported["bundle"]), "--key", exported["key"], "--format", "pdf",
                     "--out", str(pdf))  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF-") and pdf.stat().st_size > 10_000
    assert not loaded(rendered.stderr) & set(NOT_LOADED)
