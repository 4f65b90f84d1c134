"""The inbox's vendored HPKE library (`services/inbox/static/vendor/hpke/`, see `vendored_hpke.py`) is
the ESM build of the @hpke/core and @hpke/common versions tests/node installs, byte for byte but for
the one import path rewritten, with their licences; and the browser modules load nothing from elsewhere
(no URL, no bare package name a browser could not resolve under the CSP)."""

from __future__ import annotations

import re

from services.inbox.app import HERE
from tests.support.node import require_node
from tests.unit.inbox.vendored_hpke import (
    PACKAGES,
    VENDOR,
    expected_files,
    installed_version,
    vendored_files,
)

STATIC = HERE / "static"
_IMPORT = re.compile(r'^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)";', re.M | re.S)
_COMMENTS = re.compile(r"/\*.*?\*/|^\s*//.*?$", re.M | re.S)


def static_imports(source: str) -> list[str]:
    """The specifiers of a module's static `import ... from` and `export ... from` (comments aside)."""
    return _IMPORT.findall(_COMMENTS.sub("", source))


def test_the_copy_is_the_installed_packages_esm_build() -> None:
    require_node(*(package for package, _ in PACKAGES.values()))
    for package, version in PACKAGES.values():
        assert installed_version(package) == version
    expected, vendored = expected_files(), vendored_files()
    assert sorted(vendored) == sorted(expected)
    changed = sorted(path for path in expected if vendored[path] != expected[path])
    assert not changed, f"the vendored copy differs from the package: {changed[:5]}"
    assert {"core/LICENSE", "common/LICENSE", "core/mod.js", "common/mod.js"} <= set(vendored)


def test_the_copy_says_what_it_is() -> None:
    readme = (VENDOR / "README.md").read_text()
    for package, version in PACKAGES.values():
        assert f"{package} {version}" in readme
    for licence in ("core/LICENSE", "common/LICENSE"):
        assert "MIT License" in (VENDOR / licence).read_text()


def test_every_static_import_is_a_relative_path_to_a_file_the_inbox_serves() -> None:
    modules = sorted(STATIC.rglob("*.js"))
    assert len(modules) > 50
    for module in modules:
        for specifier in static_imports(module.read_text()):
            assert specifier.startswith(("./", "../")), f"{module.relative_to(STATIC)}: imports {specifier}"
            target = (module.parent / specifier).resolve()
            assert target.is_file() and STATIC in target.parents, f"{module.relative_to(STATIC)}: {specifier}"
