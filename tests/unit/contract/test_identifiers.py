"""The read side's id pattern is defined once (`cepbus/contract/identifiers.py`) and every process that
checks an id (the router's read side, the partner inbox) uses that definition."""

from __future__ import annotations

import uuid

import pytest

from cepbus.contract.identifiers import ID_FRAGMENT, ID_PATTERN, ID_REGEX
from tests.support import ROOT


@pytest.mark.parametrize(
    "good", [str(uuid.uuid4()), "transitions-pro-r76", "cep-r11", "ref:2026.03_1", "A", "a" * 128]
)
def test_ids_the_bus_issues_are_ids(good: str) -> None:
    assert ID_REGEX.match(good)


@pytest.mark.parametrize("bad", ["", "-leading", "../etc", "a/b", "a b", "é", "a" * 129, "a?b"])
def test_anything_else_is_not(bad: str) -> None:
    assert not ID_REGEX.match(bad)


def test_the_pattern_is_restated_nowhere_else() -> None:
    home = ROOT / "cepbus" / "contract" / "identifiers.py"
    copies = [
        str(path.relative_to(ROOT))
        for top in ("cepbus", "cepbus_app", "services")
        for path in sorted((ROOT / top).rglob("*.py"))
        if path != home and "._:-]" in path.read_text(encoding="utf-8")  # the id's characters, as a class
    ]
    assert copies == []
    assert ID_FRAGMENT in ID_PATTERN and ID_REGEX.pattern == ID_PATTERN
