"""The README's first command, then the auditor's document on what it left: `cep-bus demo` in a fresh
directory (its own embedded broker and services on free ports, as on a fresh machine), then `cep-bus
audit report --format pdf` on the demo's ledger; every page rendered by pdftoppm, and every page names
the checkpoint the figures were computed from, which covers the whole tree. Pages are kept under
`test-artifacts/audit-report/demo/` when CEPBUS_TEST_ARTIFACTS is set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from pypdf import PdfReader

from tests.conftest import free_port
from tests.support import ROOT
from tests.unit.ledger.test_report_document import flat, need

pytestmark = pytest.mark.integration

INTAKES = 300


def cep_bus() -> str:
    return str(Path(sys.executable).with_name("cep-bus"))


def test_the_demo_completes_and_the_audit_pdf_of_its_ledger_names_a_checkpoint_of_the_whole_tree(
    tmp_path: Path,
) -> None:
    pdftoppm = need(shutil.which("pdftoppm"), "pdftoppm (poppler-utils)")
    broker = free_port()
    env = {
        **os.environ,
        "CEPBUS_TANSU_PORT": str(broker),
        "CEPBUS_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker}",
        "CEPBUS_ROUTER_METRICS_PORT": str(free_port()),
        "CEPBUS_NOTIFIER_METRICS_PORT": str(free_port()),
        "CEPBUS_LEDGER_METRICS_PORT": str(free_port()),
        "CEPBUS_DEADLETTERS_METRICS_PORT": str(free_port()),
        "CEPBUS_REFERRALS_HTTP_PORT": str(free_port()),
        "CEPBUS_PROGRESS": "0",
    }
    for inherited in ("CEPBUS_LEDGER_DATABASE_URL", "CEPBUS_LEDGER_SIGNING_KEY_PATH", "CEPBUS_LEDGER_ORIGIN"):
        env.pop(inherited, None)  # the demo's own defaults, under its working directory
    demo = subprocess.run(
        [cep_bus(), "demo", "--intakes", str(INTAKES), "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout.strip().splitlines()[-1])
    assert summary["loop_completed"] and summary["ledger_verified"]
    assert summary["intakes_published"] == INTAKES
    assert "broker" in summary["started"]  # its own embedded broker, as on a fresh machine
    assert summary["ledger_checkpoint_covers"] == summary["ledger_tree_size"] == summary["ledger_entries"]

    pdf = tmp_path / "audit.pdf"
    report = subprocess.run(
        [cep_bus(), "audit", "report", "--format", "pdf", "--out", str(pdf)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    pages_dir = tmp_path / "pages"
    pages_dir.mkdir()
    subprocess.run([str(pdftoppm), "-png", "-r", "50", str(pdf), str(pages_dir / "audit-demo")],
                   check=True, timeout=120)  # fmt: skip
    pages = sorted(pages_dir.glob("audit-demo-*.png"))
    reader = PdfReader(pdf)
    assert len(pages) == len(reader.pages) >= 12
    cover = flat(reader.pages[0].extract_text())
    tree_size = f"{summary['ledger_tree_size']:,}".replace(",", " ")
    assert "Vérification réussie" in cover and "ne sont pas encore signées" not in cover
    assert f"taille {tree_size}, racine" in cover  # the signed checkpoint covers every entry
    root = cover.split("Racine (base64) ", 1)[1].split(" ", 1)[0]
    for png, page in zip(pages, reader.pages, strict=True):
        assert ImageStat.Stat(Image.open(png).convert("L")).stddev[0] > 12, f"{png.name} looks blank"
        assert root in flat(page.extract_text()), f"{png.name} does not name the checkpoint's root"
    if os.environ.get("CEPBUS_TEST_ARTIFACTS"):
        kept = ROOT / "test-artifacts" / "audit-report" / "demo"
        kept.mkdir(parents=True, exist_ok=True)
        for path in (pdf, *pages):
            shutil.copy2(path, kept / path.name)
