"""Dependencies run one way: the shared package (`cepbus`) imports no service and not the composition
root; no service imports another service or the composition root; the SDKs reach no stream framework,
not even through the shared modules they import. Imports are read with `ast`, lazy ones (inside
functions) and `importlib.import_module("...")` calls included."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT

STREAM_FRAMEWORKS = ("faust", "mode", "aiokafka")
SDK_MODULES = ("cepbus.sdk.publisher", "cepbus.sdk.partner")
#: The log library (what an auditor installs): none of the bus's runtime, SDKs, services or root.
LOG_LIBRARY = "cepbus.auditlog"
OUTSIDE_THE_LOG_LIBRARY = ("cepbus.runtime", "cepbus.sdk", "services", "cepbus_app")
#: Clients and drivers an auditor has no use for.
NOT_FOR_AUDITORS = (*STREAM_FRAMEWORKS, "confluent_kafka", "psycopg", "kafka", "fastapi", "uvicorn")


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} -> {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> Iterator[Edge]:
    """Every module `source` imports, relative imports resolved against `module`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield Edge(module, base, node.lineno)
            for alias in node.names:  # `from services import router` imports services.router
                yield Edge(module, f"{base}.{alias.name}", node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Edge(module, node.args[0].value, node.lineno)


def project_edges() -> list[Edge]:
    edges: list[Edge] = []
    for top in ("cepbus", "cepbus_app", "services"):
        for path in sorted((ROOT / top).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            edges.extend(imports_of(source, module_name(path), path.stem == "__init__"))
    return edges


def top(dotted: str, depth: int = 1) -> str:
    return ".".join(dotted.split(".")[:depth])


def forbidden(edge: Edge) -> str | None:
    """Why an edge breaks the direction of dependencies, or None."""
    source, target = edge.source, edge.target
    if top(source) == "cepbus" and top(target) in ("services", "cepbus_app"):
        return "the shared package imports a service or the composition root"
    if top(source) == "services":
        if top(target) == "cepbus_app":
            return "a service imports the composition root"
        if top(target) == "services" and len(target.split(".")) > 1 and top(target, 2) != top(source, 2):
            return "a service imports another service"
    if source.startswith("cepbus.sdk") and top(target) in STREAM_FRAMEWORKS:
        return "an SDK imports a stream framework"
    if source.startswith(LOG_LIBRARY) and (
        any(target == room or target.startswith(room + ".") for room in OUTSIDE_THE_LOG_LIBRARY)
        or top(target) in NOT_FOR_AUDITORS
    ):
        return "the log library imports the bus's runtime, an SDK, a service or a client"
    return None


def reachable(start: str, edges: list[Edge]) -> dict[str, list[str]]:
    """Every module reachable from `start` through project imports, with one import path to it."""
    by_source: dict[str, set[str]] = {}
    for edge in edges:
        by_source.setdefault(edge.source, set()).add(edge.target)
    paths = {start: [start]}
    todo = [start]
    while todo:
        current = todo.pop()
        for target in sorted(by_source.get(current, ())):
            if target in paths:
                continue
            paths[target] = [*paths[current], target]
            if top(target) in ("cepbus", "cepbus_app", "services"):
                todo.append(target)
    return paths


def test_dependencies_run_one_way() -> None:
    edges = project_edges()
    assert len(edges) > 300  # the scan really read the code
    violations = [f"{edge}: {why}" for edge in edges if (why := forbidden(edge))]
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("sdk", SDK_MODULES)
def test_the_sdks_reach_no_stream_framework_even_indirectly(sdk: str) -> None:
    paths = reachable(sdk, project_edges())
    assert "cepbus.contract.codec" in paths  # the closure is real: the SDK encodes through the contract
    bad = {m: p for m, p in paths.items() if top(m) in (*STREAM_FRAMEWORKS, "services", "cepbus_app")}
    assert not bad, "\n".join(" -> ".join(path) for path in bad.values())


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("cepbus.runtime.x", "from services.router.store import RouterStore", "shared package"),
        ("cepbus.runtime.x", "def f():\n    import cepbus_app.cli\n", "shared package"),
        ("cepbus.runtime.x", "import importlib\nimportlib.import_module('services.ledger.app')", "shared"),
        ("services.router.handlers", "from services.notifier.notice import render_notice", "another service"),
        ("services.router.handlers", "from services import notifier", "another service"),
        ("services.ledger.cli", "from cepbus_app.demo import loop", "composition root"),
        ("cepbus.sdk.publisher", "import faust", "stream framework"),
        ("cepbus.sdk.partner", "from aiokafka import AIOKafkaConsumer", "stream framework"),
        ("cepbus.auditlog.report", "from cepbus.runtime.logs import get_logger", "log library"),
        ("cepbus.auditlog.bundle", "from cepbus.sdk.publisher import Publisher", "log library"),
        ("cepbus.auditlog.cli", "def f():\n    import psycopg\n", "log library"),
        (
            "services.deadletters.cli",
            "from services.ledger.settings import LedgerSettings",
            "another service",
        ),
        ("services.ledger.app", "from services.deadletters.store import DeadLetterStore", "another service"),
    ],
)
def test_the_check_catches_each_kind_of_wrong_edge(module: str, source: str, why: str) -> None:
    reasons = [r for edge in imports_of(source, module) if (r := forbidden(edge))]
    assert reasons and why in reasons[0]


def test_a_service_may_import_itself_and_the_shared_package() -> None:
    source = "from services.router.store import RouterStore\nfrom cepbus.contract.models import Event\n"
    assert not [edge for edge in imports_of(source, "services.router.app") if forbidden(edge)]


def test_importing_the_sdks_loads_neither_faust_nor_any_service() -> None:
    """In a fresh interpreter (this one has Faust loaded by other tests)."""
    code = f"import json, sys\nimport {', '.join(SDK_MODULES)}\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert {"cepbus.sdk.publisher", "cepbus.sdk.partner", "kafka"} <= loaded
    unwanted = sorted(m for m in loaded if top(m) in (*STREAM_FRAMEWORKS, "services", "cepbus_app"))
    assert not unwanted, unwanted


def log_library_modules() -> list[str]:
    return sorted(
        module_name(path) for path in (ROOT / "cepbus" / "auditlog").rglob("*.py") if path.stem != "__main__"
    )


def test_the_log_library_reaches_nothing_of_the_bus_even_indirectly() -> None:
    """What an auditor installs: from any module of `cepbus.auditlog`, no import path leads to the
    runtime, an SDK, a service, the composition root or a Kafka or database client."""
    edges = project_edges()
    modules = log_library_modules()
    assert {"cepbus.auditlog.bundle", "cepbus.auditlog.report", "cepbus.auditlog.cli"} <= set(modules)
    for module in modules:
        paths = reachable(module, edges)
        bad = {
            m: p
            for m, p in paths.items()
            if any(m == room or m.startswith(room + ".") for room in OUTSIDE_THE_LOG_LIBRARY)
            or top(m) in NOT_FOR_AUDITORS
        }
        assert not bad, "\n".join(" -> ".join(path) for path in bad.values())


def test_importing_the_log_library_loads_no_runtime_service_or_client() -> None:
    """In a fresh interpreter: every module of the library imported, none of the bus's rooms loaded."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {log_library_modules()!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert {"cepbus.auditlog.bundle", "cepbus.auditlog.cli", "cepbus.contract.codec"} <= loaded
    unwanted = sorted(
        m
        for m in loaded
        if any(m == room or m.startswith(room + ".") for room in OUTSIDE_THE_LOG_LIBRARY)
        or top(m) in NOT_FOR_AUDITORS
    )
    assert not unwanted, unwanted


def test_the_dead_letter_component_imports_no_other_service() -> None:
    edges = [e for e in project_edges() if e.source.startswith("services.deadletters")]
    assert edges, "the dead-letter component's imports were read"
    others = [
        str(e) for e in edges if top(e.target) == "services" and top(e.target, 2) != "services.deadletters"
    ]
    assert not others, others


#: The longest a function of the three packages may be (issue #22: no grab-bag closures).
MAX_FUNCTION_LINES = 150


def test_no_function_is_longer_than_the_limit() -> None:
    long = []
    for package in ("cepbus", "services", "cepbus_app"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    assert node.end_lineno is not None
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over the limit:\n" + "\n".join(long)
