"""The audit report as a document, tested by rendering it: a ledger built from the demo's own domain code
(simulated intakes, the router's and notifier's outputs, levels of service, breaches, referral verdicts),
`cep-bus audit report --format pdf|html` from the database and from its verified bundle; the PDF's pages
turned into PNG with pdftoppm and checked for their text and their charts, its PDF/A metadata and its
attached JSON; the HTML opened in headless Chromium (Debian's, through Playwright: never a downloaded
browser). Chromium and pdftoppm tests skip when the tools are missing, unless CEPBUS_REQUIRE_BROWSER=1
(CI). With CEPBUS_TEST_ARTIFACTS set, the PNG pages, the screenshots and the render times are also copied
to test-artifacts/audit-report/ at the repository root."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy
import pytest
from PIL import Image, ImageStat
from pypdf import PdfReader
from typer.testing import CliRunner

from cepbus.auditlog.document import ATTACHMENT_NAME, delay_chart_svg, number, render_html, render_pdf
from cepbus.auditlog.note import Signer
from cepbus.auditlog.report import build_report
from cepbus.contract.models import (
    Event,
    ReferralRequested,
    ReferralStatus,
    ReferralStatusChanged,
    ReferralUpdateVerdict,
)
from cepbus.reference.sites import load_sites
from cepbus_app.cli import app
from cepbus_app.demo.loop import plan_demo
from tests.support import ROOT
from tests.support.ledger import applied_update, ledger_record, open_ledger

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
REQUIRE_TOOLS = os.environ.get("CEPBUS_REQUIRE_BROWSER") == "1"
ORIGIN = "cep-bus.test/ledger"
SECTIONS = (
    "Rapport d'audit de la régulation CEP", "1. Synthèse par région", "2. Synthèse par type d'opérateur",
    "3. Avis d'information", "4. Orientations et leurs issues", "5. Délai de rendez-vous CEP",
    "6. Sites d'accueil en usage par département", "7. Manquements à la régulation",
    "8. Opérateurs silencieux", "Annexe A — Méthodes", "Annexe B — Données",
)  # fmt: skip
CHART_CAPTIONS = ("Délai accueil → avis d'information, par région",
                  "Délai orientation → premier rendez-vous du partenaire, par région",
                  "Délai de rendez-vous CEP (accueil → premier niveau 1 ou 2), par région")  # fmt: skip
BAR_BLUE = (0x1F, 0x5F, 0xA8)


def need(tool: Path | str | None, what: str) -> Path:
    """The tool's path; a skip (a failure under CEPBUS_REQUIRE_BROWSER=1) when it is missing."""
    found = Path(tool) if tool and Path(tool).exists() else None
    if found is None:
        if REQUIRE_TOOLS:
            pytest.fail(f"{what} is required (CEPBUS_REQUIRE_BROWSER=1) but missing")
        pytest.skip(f"{what} not installed")
    return found


def keep(*paths: Path) -> None:
    """Copy test artefacts to test-artifacts/audit-report/ when CEPBUS_TEST_ARTIFACTS is set."""
    if not os.environ.get("CEPBUS_TEST_ARTIFACTS"):
        return
    target = ROOT / "test-artifacts" / "audit-report"
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copy2(path, target / path.name)


def flat(text: str) -> str:
    """Text with every kind of space as one plain space (numbers use narrow no-break spaces)."""
    return re.sub(r"\s+", " ", text.replace("\u202f", " ").replace("\u00a0", " "))


# -- a realistic ledger ----------------------------------------------------------------------------------


def verdict(
    referral: ReferralRequested, status: ReferralStatus, after: timedelta
) -> tuple[ReferralStatusChanged, ReferralUpdateVerdict]:
    """The recipient's signed update and the router's verdict applying it, as the ledger records them."""
    return applied_update(referral, status, referral.envelope.occurred_at + after)


def audit_events(intakes: int, seed: int) -> list[Event]:
    """What the demo's loop puts in the ledger (its own pure plan), plus the partners' answers: two
    referrals in three accepted and seen at a first appointment days later, one declined."""
    plan = plan_demo(intakes, seed)
    events = list(plan.expected.events)
    referrals = [e for e in plan.expected.events if isinstance(e, ReferralRequested)]
    for n, referral in enumerate(referrals):
        if n % 3:
            events.extend(verdict(referral, ReferralStatus.ACCEPTED, timedelta(hours=20 + n)))
            events.extend(verdict(referral, ReferralStatus.FIRST_APPOINTMENT_HELD, timedelta(days=2 + n % 9)))
        else:
            events.extend(verdict(referral, ReferralStatus.DECLINED, timedelta(days=1)))
    return events


def build_ledger(path: Path, events: list[Event], signer: Signer) -> None:
    """Each event recorded by the ledger when it occurred (the store's clock set to it), so that delays
    on the bus's clock are the real ones; then a checkpoint signed over all of them."""
    now = [0]
    store = open_ledger(path, clock=lambda: now[0], synchronous="OFF")
    try:
        for event in sorted(events, key=lambda e: e.envelope.occurred_at):
            now[0] = int(event.envelope.occurred_at.timestamp() * 1000)
            store.append([ledger_record(event, "t", occurred_ms=now[0], signed=True)])
        assert store.checkpoint(signer) is not None
    finally:
        store.close()


@dataclass
class Rendered:
    dir: Path
    vkey: str
    bundle: Path
    pdf: Path  # from the ledger's database
    html: Path
    bundle_pdf: Path  # from the verified bundle
    json_report: dict[str, Any]
    bundle_json: dict[str, Any]
    runner: CliRunner
    times: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    """One ledger, rendered once: PDF and HTML from the database, PDF from the bundle, and both JSONs."""
    base = tmp_path_factory.mktemp("audit-document")
    db, key = base / "ledger.db", base / "signing.key"
    signer = Signer.generate(ORIGIN)
    key.write_text(str(signer) + "\n")
    build_ledger(db, audit_events(140, seed=5), signer)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CEPBUS_LEDGER_DATABASE_URL", f"sqlite:///{db}")
        env.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(key))
        env.setenv("CEPBUS_LEDGER_ORIGIN", ORIGIN)
        runner = CliRunner()
        bundle = base / "bundle.json"
        assert runner.invoke(app, ["ledger", "export", "--out", str(bundle)]).exit_code == 0
        pinned = ["--bundle", str(bundle), "--key", str(signer.verifier())]
        times: dict[str, float] = {}

        def run(name: str, *args: str) -> Any:
            started = time.perf_counter()
            result = runner.invoke(app, ["audit", "report", *args])
            times[name] = round(time.perf_counter() - started, 2)
            assert result.exit_code == 0, result.output
            return result

        pdf, html, bundle_pdf = base / "audit.pdf", base / "audit.html", base / "audit-bundle.pdf"
        run("pdf from the ledger", "--format", "pdf", "--out", str(pdf))
        run("html from the ledger", "--format", "html", "--out", str(html))
        run("pdf from the bundle", "--format", "pdf", "--out", str(bundle_pdf), *pinned)
        json_report = json.loads(run("json from the ledger").stdout)
        bundle_json = json.loads(run("json from the bundle", *pinned).stdout)
    timings = base / "render-times.json"
    timings.write_text(json.dumps(times, indent=2) + "\n")
    keep(timings, pdf, html, bundle_pdf)
    print(f"\naudit report render times (s): {times}")
    yield Rendered(base, str(signer.verifier()), bundle, pdf, html, bundle_pdf, json_report, bundle_json,
                   runner, times)  # fmt: skip


def png_pages(pdf: Path, out: Path) -> list[Path]:
    """Every page of `pdf` as a PNG at 50 dpi (pdftoppm), in order."""
    tool = need(shutil.which("pdftoppm"), "pdftoppm (poppler-utils)")
    out.mkdir(exist_ok=True)
    subprocess.run([str(tool), "-png", "-r", "50", str(pdf), str(out / pdf.stem)], check=True, timeout=120)
    return sorted(out.glob(f"{pdf.stem}-*.png"))


def blue_pixels(png: Path) -> int:
    """Pixels of the charts' bar colour (within a small tolerance): in quantity, only ever in a chart."""
    pixels = numpy.asarray(Image.open(png).convert("RGB"), dtype=numpy.int16)
    return int((numpy.abs(pixels - numpy.array(BAR_BLUE)) < 24).all(axis=2).sum())


# -- the PDF -------------------------------------------------------------------------------------------


def test_every_pdf_page_renders_and_names_the_checkpoint(rendered: Rendered) -> None:
    reader = PdfReader(rendered.pdf)
    pages = png_pages(rendered.pdf, rendered.dir / "pages")
    keep(*pages)
    assert len(pages) == len(reader.pages) >= 12
    source = rendered.json_report["source"]
    root, size = source["root_b64"], number(source["tree_size"])
    for png, page in zip(pages, reader.pages, strict=True):
        stats = ImageStat.Stat(Image.open(png).convert("L"))
        assert stats.stddev[0] > 12, f"{png.name} looks blank"
        text = flat(page.extract_text())
        assert root in text, f"{png.name} does not name the checkpoint's root"  # the running header
        assert len(text) > 300
    cover = flat(reader.pages[0].extract_text())
    assert ORIGIN in cover and flat(size) in cover and "Vérification réussie" in cover
    assert rendered.vkey in cover  # the key the checkpoints were verified with
    assert source["checkpoint"]["tree_size"] == source["tree_size"]  # the checkpoint covers every entry
    everything = flat(" ".join(page.extract_text() for page in reader.pages))
    for title in SECTIONS:
        assert flat(title) in everything, title


def test_the_reception_sites_are_named_from_the_registry_and_counted_against_it(rendered: Rendered) -> None:
    """The demo's intakes at a regional operator name a registered site: the report counts the sites in
    use per département against those declared, and the document names them."""
    sites = rendered.json_report["reception_sites"]
    assert sites["site_fact_in_ledger"] and sites["registry"] and sites["unregistered_sites"] == {}
    assert sites["sites_registered"] == len(load_sites()) and 0 < sites["sites_in_use"] < len(load_sites())
    in_use = {site for row in sites["by_departement"].values() for site in row["sites"]}
    assert len(in_use) == sites["sites_in_use"]
    unused = [s for row in sites["by_departement"].values() for s in row["registered_sites_unused"]]
    assert len(unused) == sites["sites_registered"] - sites["sites_in_use"]
    everything = flat(" ".join(page.extract_text() for page in PdfReader(rendered.pdf).pages))
    named = sorted(in_use)[0]
    assert flat(load_sites().site(named).name) in everything and named in everything
    assert flat(f"sur {number(sites['sites_registered'])} sites déclarés") in everything
    assert rendered.json_report["cep_appointment_delay"]["by_reception_site"]  # the delay per site


def test_the_pdf_charts_are_drawn_and_vector(rendered: Rendered) -> None:
    reader = PdfReader(rendered.pdf)
    pages = png_pages(rendered.pdf, rendered.dir / "pages")
    texts = [flat(page.extract_text()) for page in reader.pages]
    for caption in CHART_CAPTIONS:
        where = [n for n, text in enumerate(texts) if flat(caption) in text]
        assert where, caption
        assert blue_pixels(pages[where[0]]) > 400, f"no bars drawn on page {where[0] + 1} ({caption})"
    assert blue_pixels(pages[-1]) < 40  # the annex has no chart (a few pixels of anti-aliased text)

    def images(resources: Any) -> int:
        found = 0
        for item in (resources or {}).get("/XObject", {}).values():
            xobject = item.get_object()
            found += xobject.get("/Subtype") == "/Image"
            found += images(xobject.get("/Resources"))
        return found

    assert sum(images(page.get("/Resources")) for page in reader.pages) == 0  # no raster anywhere


def test_the_pdf_is_pdf_a_3b_with_the_json_report_attached(rendered: Rendered) -> None:
    reader = PdfReader(rendered.pdf)
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode()
    assert re.search(r'pdfaid:part(>|=")3', xmp) and re.search(r'pdfaid:conformance(>|=")B', xmp)
    attached = reader.attachments[ATTACHMENT_NAME]
    assert len(attached) == 1 and json.loads(attached[0]) == rendered.json_report
    specs = {
        spec.idnum: spec.get_object() for spec in reader.trailer["/Root"]["/AF"]
    }  # WeasyPrint lists it twice
    assert [spec["/AFRelationship"] for spec in specs.values()] == ["/Data"]
    assert [spec["/F"] for spec in specs.values()] == [ATTACHMENT_NAME]
    assert reader.metadata is not None and ORIGIN in (reader.metadata.title or "")
    bundle_reader = PdfReader(rendered.bundle_pdf)
    assert json.loads(bundle_reader.attachments[ATTACHMENT_NAME][0]) == rendered.bundle_json


def test_the_bundle_pdf_says_what_was_verified_and_against_which_pinned_key(rendered: Rendered) -> None:
    reader = PdfReader(rendered.bundle_pdf)
    pages = png_pages(rendered.bundle_pdf, rendered.dir / "bundle-pages")
    keep(*pages)
    assert len(pages) == len(reader.pages)
    cover = flat(reader.pages[0].extract_text())
    assert "Lot d'export vérifié hors ligne" in cover and "clé épinglée" in cover
    assert rendered.vkey in cover and rendered.bundle_json["source"]["root_b64"] in cover
    # the same figures as from the database: only the source differs, and the refusals by reason, which
    # only the ledger's operator can open (sealed facts, issue #24)
    ledger, bundle = dict(rendered.json_report), dict(rendered.bundle_json)
    ledger.pop("source"), bundle.pop("source")
    ledger["referrals"] = {k: v for k, v in ledger["referrals"].items() if k != "refusals"}
    bundle_refusals = bundle["referrals"]["refusals"]
    bundle["referrals"] = {k: v for k, v in bundle["referrals"].items() if k != "refusals"}
    assert ledger == bundle
    assert bundle_refusals["available"] is False


# -- the HTML in a browser -------------------------------------------------------------------------------


def test_the_html_document_in_headless_chromium(rendered: Rendered) -> None:
    need(CHROMIUM, "Debian's chromium")
    from playwright.sync_api import sync_playwright

    shots = rendered.dir / "screenshots"
    shots.mkdir(exist_ok=True)
    problems: list[str] = []
    source = rendered.json_report["source"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(rendered.html.as_uri())
            assert ORIGIN in page.title() and "Rapport d'audit" in page.title()
            cover = flat(page.locator("#couverture").inner_text())
            assert source["root_b64"] in cover and flat(number(source["tree_size"])) in cover
            assert "Vérification réussie" in cover
            charts = page.locator("figure.chart svg")
            assert charts.count() == 3
            for index in range(3):
                box = charts.nth(index).bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 150, box
            ids = page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)")
            assert len(ids) == len(set(ids)), "two elements share an id (inlined SVGs must not)"
            page.screenshot(path=str(shots / "html-full.png"), full_page=True)
            sections = page.locator("section")
            for index in range(sections.count()):
                name = sections.nth(index).get_attribute("id")
                sections.nth(index).screenshot(path=str(shots / f"html-{index:02d}-{name}.png"))
        finally:
            browser.close()
    assert problems == []
    keep(*sorted(shots.glob("*.png")))


def test_each_chart_is_a_vector_svg_with_its_own_ids() -> None:
    distribution = {"by_region": {"04": {"recorded": [0, 3, 1] + [0] * 9, "claimed": [2, 2] + [0] * 10},
                                  "84": {"recorded": [1] * 12}}}  # fmt: skip
    panels = [("04", "04 La Réunion"), ("84", "84 Auvergne-Rhône-Alpes")]
    one = delay_chart_svg(distribution, list(range(12)), panels, chart_id="one")
    two = delay_chart_svg(distribution, list(range(12)), panels, chart_id="two")
    for svg in (one, two):
        assert svg.startswith("<svg") and "<path" in svg and "<image" not in svg
        assert "La Réunion" in svg and "<style" not in svg  # text stays text; no global stylesheet
    ids_one, ids_two = set(re.findall(r'id="([^"]+)"', one)), set(re.findall(r'id="([^"]+)"', two))
    assert ids_one and not ids_one & ids_two
    assert all(ref.startswith("one-") for ref in re.findall(r"url\(#([^)]+)\)", one))
    assert delay_chart_svg({"by_region": {}}, list(range(12)), panels, chart_id="none") == ""


# -- bad input, fallbacks ----------------------------------------------------------------------------------


def test_pdf_is_never_written_to_a_terminal() -> None:
    command = Path(sys.executable).parent / "cep-bus"
    master, slave = pty.openpty()
    try:
        result = subprocess.run(
            [str(command), "audit", "report", "--format", "pdf"],
            stdout=slave, stderr=subprocess.PIPE, timeout=120, check=False,
        )  # fmt: skip
        os.set_blocking(master, False)
        try:
            written = os.read(master, 1 << 16)
        except BlockingIOError:
            written = b""
    finally:
        os.close(master)
        os.close(slave)
    assert result.returncode == 2 and b"pass --out FILE" in result.stderr
    assert b"%PDF" not in written and b"Traceback" not in result.stderr


def test_pdf_goes_to_stdout_when_it_is_not_a_terminal(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CEPBUS_LEDGER_DATABASE_URL", f"sqlite:///{rendered.dir / 'ledger.db'}")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(rendered.dir / "signing.key"))
    monkeypatch.setenv("CEPBUS_LEDGER_ORIGIN", ORIGIN)
    result = rendered.runner.invoke(app, ["audit", "report", "--format", "pdf", "--region", "06"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"%PDF-") and result.stdout_bytes.rstrip().endswith(b"%%EOF")


@pytest.mark.parametrize("target", ["missing-dir/report.html", "."])
def test_an_unwritable_out_is_one_line_and_exit_2(rendered: Rendered, target: str) -> None:
    out = rendered.dir / target
    result = rendered.runner.invoke(app, ["audit", "report", "--format", "html", "--out", str(out)])
    assert result.exit_code == 2 and "not a file in an existing directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_pdf_that_cannot_be_pdf_a_is_still_written_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from cepbus.auditlog import document as report_document

    report = {"source": {"kind": "ledger", "tree_size": 0, "root_b64": None}, **build_report([])}
    monkeypatch.setattr(report_document, "PDF_VARIANT", "pdf/a-not-a-variant")
    pdf = render_pdf(report, generated_at=datetime(2026, 3, 2, tzinfo=UTC))
    assert pdf.variant is None and pdf.problem
    reader = PdfReader(io.BytesIO(pdf.data))
    assert json.loads(reader.attachments[ATTACHMENT_NAME][0]) == report
    # a report that carries no verification result says so on its cover, in the failure's colours
    html = render_html(report)
    assert "Aucun résultat de vérification" in html and 'class="verdict ko"' in html
