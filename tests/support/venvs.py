"""cep-bus installed the way a user installs it: the wheel built from this checkout, `pip install`ed into
a fresh virtualenv (no system site packages, not this repository on the path), with or without extras.

The project's own `.venv` has every extra, so a module that needs a dependency outside the extra it
belongs to would go unnoticed there; a fresh venv per extra is the only place where "`pip install
cep-bus` is enough for the SDKs" can be checked. The wheel is built once per test session and each
venv once per set of extras, both under one temporary directory removed when the session's process
exits. pip's own cache (and its configuration) is used as is, so a second session downloads nothing."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from functools import cache
from pathlib import Path

from tests.support import ROOT

#: a cold pip cache on a slow mirror: the audit extra alone brings matplotlib and weasyprint
INSTALL_TIMEOUT_S = 900
_lock = threading.Lock()


class VenvError(RuntimeError):
    """Building the wheel or a venv failed; the message carries pip's output."""


@cache
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="cepbus-venvs-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def pip_env() -> dict[str, str]:
    """The environment for pip and for programs run in a fresh venv: this process's, without what
    would make them see this checkout or this venv instead of what was installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str], what: str, cwd: Path) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=pip_env(), capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise VenvError(f"{what} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


@cache
def built_wheel() -> Path:
    """The wheel of this checkout (`pip wheel --no-deps`, hatchling in pip's isolated build env)."""
    out = _workdir() / "wheel"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
        "building the cep-bus wheel",
        cwd=_workdir(),
    )
    wheels = sorted(out.glob("cep_bus-*.whl"))
    if len(wheels) != 1:
        raise VenvError(f"expected one cep-bus wheel in {out}, found {[w.name for w in wheels]}")
    return wheels[0]


def python_of(venv: Path) -> Path:
    """The venv's interpreter: run through it, a program sees only what was installed there."""
    return venv / "bin" / "python"


def _create(extras: str | None) -> Path:
    wheel = built_wheel()
    venv = _workdir() / f"venv-{(extras or 'bare').replace(',', '-')}"
    _run([sys.executable, "-m", "venv", str(venv)], f"creating {venv.name}", cwd=_workdir())
    requirement = f"{wheel}[{extras}]" if extras else str(wheel)
    _run(
        [str(python_of(venv)), "-m", "pip", "install", "--quiet", requirement],
        f"pip install {requirement}",
        cwd=_workdir(),
    )
    return venv


_venvs: dict[str | None, Path] = {}


def fresh_venv(extras: str | None) -> Path:
    """A venv holding cep-bus from this checkout's wheel with `extras` (e.g. "audit", "services,inbox";
    None: the bare `pip install cep-bus`), created on first use in this session and reused after."""
    key = ",".join(sorted(e.strip() for e in extras.split(","))) if extras else None
    with _lock:
        if key not in _venvs:
            _venvs[key] = _create(key)
        return _venvs[key]


def installed_distributions(venv: Path) -> dict[str, str]:
    """Distribution name (normalised: lower case, `-`) -> version, of everything installed in `venv`."""
    out = _run(
        [str(python_of(venv)), "-m", "pip", "list", "--format", "json"], f"pip list in {venv.name}", venv
    )
    return {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(out)}
