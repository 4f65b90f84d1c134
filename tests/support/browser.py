"""Headless Chromium for the browser tests: Debian's `/usr/bin/chromium` driven by Playwright, never a
downloaded browser. Without it the tests skip, unless `CEPBUS_REQUIRE_BROWSER=1` (CI), where they fail.
Screenshots go to `test-artifacts/<name>/` under the repository root when `CEPBUS_TEST_ARTIFACTS` is
set (CI keeps them), else to the test's tmp_path."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRE_BROWSER = os.environ.get("CEPBUS_REQUIRE_BROWSER") == "1"


def require_chromium() -> None:
    """Skip (or fail, with CEPBUS_REQUIRE_BROWSER=1) without Debian's chromium and Playwright."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package"
    else:
        missing = "" if CHROMIUM.exists() else str(CHROMIUM)
    if not missing:
        return
    if REQUIRE_BROWSER:
        pytest.fail(f"CEPBUS_REQUIRE_BROWSER=1 but {missing} is missing")
    pytest.skip(f"{missing} is missing (apt-get install chromium; never `playwright install`)")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright `Browser`), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def artifacts_dir(name: str, tmp_path: Path) -> Path:
    """Where a test keeps its screenshots (see the module doc)."""
    folder = ROOT / "test-artifacts" / name if os.environ.get("CEPBUS_TEST_ARTIFACTS") else tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` read-only on a loopback port (a secure context for WebCrypto); yields its URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
