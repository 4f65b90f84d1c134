"""The Node.js side of the tests (tests/node: avsc, kafkajs, @asyncapi/parser): where it is, and whether
it can run. Without Node.js or `npm ci --prefix tests/node` its tests skip; with CEPBUS_REQUIRE_NODE=1
(CI) they fail instead, so a CI machine without Node.js cannot pass silently."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support import ROOT

NODE_DIR = ROOT / "tests" / "node"
REQUIRE_NODE = os.environ.get("CEPBUS_REQUIRE_NODE") == "1"


def require_node(*packages: str) -> None:
    """Skip the calling test (fail it with CEPBUS_REQUIRE_NODE=1) unless `node` and these npm packages
    of tests/node are installed."""
    missing = [p for p in packages if not (NODE_DIR / "node_modules" / p).is_dir()]
    if shutil.which("node") is None:
        missing.insert(0, "node")
    if not missing:
        return
    message = f"{', '.join(missing)} absent (npm ci --prefix tests/node)"
    if REQUIRE_NODE:
        pytest.fail(f"CEPBUS_REQUIRE_NODE=1 but {message}")
    pytest.skip(message)
