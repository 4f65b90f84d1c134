"""The inbox's copy of @hpke/core (HPKE, RFC 9180) and its one dependency @hpke/common, under
`services/inbox/static/vendor/hpke/`: the packages' ESM builds (`esm/**/*.js`, as npm installs them in
tests/node/node_modules from tests/node/package-lock.json) and their LICENSE files, served by the inbox
itself (no CDN: the CSP allows scripts from the inbox's origin only).

The packages ship no single-file browser bundle, and a browser cannot resolve the bare specifier
`"@hpke/common"` without an import map (an inline script, which the CSP forbids); so the copy is the
ESM tree as published, with one change: in @hpke/core's files, `from "@hpke/common";` becomes the
relative path of the copy's `common/mod.js`. Nothing else is touched (the Node-only fallback
`await import("crypto")` stays; it runs only where `globalThis.crypto` is missing, never in a browser).

`expected_files` is the copy as it must be; `test_vendored_hpke.py` compares it byte for byte.
To refresh it after a version bump in tests/node/package.json (then `npm ci --prefix tests/node`):

    .venv/bin/python -m tests.unit.inbox.vendored_hpke
"""

from __future__ import annotations

import json
import os
import re
import shutil

from services.inbox.app import HERE
from tests.support.node import NODE_DIR

VENDOR = HERE / "static" / "vendor" / "hpke"
NODE_MODULES = NODE_DIR / "node_modules"
#: folder of the copy -> npm package, and the version tests/node/package-lock.json pins
PACKAGES = {"core": ("@hpke/core", "1.9.0"), "common": ("@hpke/common", "1.10.1")}
#: What the copy holds besides the packages' files (written by hand, not compared).
OWN_FILES = {"README.md"}
_COMMON_IMPORT = re.compile(r'^((?:import|export) .* from )"@hpke/common";$', re.M)


def installed_version(package: str) -> str:
    version: str = json.loads((NODE_MODULES / package / "package.json").read_text())["version"]
    return version


def _rewritten(text: str, relative_file: str) -> str:
    """@hpke/core's module with its imports of @hpke/common pointing at the copy's common/mod.js."""
    depth = relative_file.count("/")  # core/src/kems/x.js -> 3 folders up to vendor/hpke
    target = "../" * depth + "common/mod.js"
    rewritten = _COMMON_IMPORT.sub(lambda m: f'{m.group(1)}"{target}";', text)
    leftover = [
        line for line in rewritten.splitlines() if re.match(r'^\s*(import|export|\}).* from "@hpke/', line)
    ]
    if leftover:
        raise ValueError(f"{relative_file}: an import of another package is left: {leftover[0]}")
    return rewritten


def expected_files() -> dict[str, bytes]:
    """The copy as it must be: path under vendor/hpke -> content."""
    files: dict[str, bytes] = {}
    for folder, (package, version) in PACKAGES.items():
        root = NODE_MODULES / package
        if installed_version(package) != version:
            raise ValueError(f"{package} {installed_version(package)} installed, the copy is of {version}")
        files[f"{folder}/LICENSE"] = (root / "LICENSE").read_bytes()
        for path in sorted((root / "esm").rglob("*.js")):
            relative = f"{folder}/{path.relative_to(root / 'esm').as_posix()}"
            text = path.read_text(encoding="utf-8")
            if folder == "core":
                text = _rewritten(text, relative)
            files[relative] = text.encode("utf-8")
    return files


def vendored_files() -> dict[str, bytes]:
    """The copy as it is in the tree (without OWN_FILES)."""
    return {
        path.relative_to(VENDOR).as_posix(): path.read_bytes()
        for path in sorted(VENDOR.rglob("*"))
        if path.is_file() and path.relative_to(VENDOR).as_posix() not in OWN_FILES
    }


def write() -> None:
    files = expected_files()
    for child in VENDOR.iterdir() if VENDOR.exists() else ():
        if child.name not in OWN_FILES:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for relative, content in files.items():
        path = VENDOR / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, 0o644)
    print(f"{len(files)} files written under {VENDOR}")


if __name__ == "__main__":
    write()
