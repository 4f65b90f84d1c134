"""What a real start of a service loads: on the batch runtime (the default), no Faust, no `mode`, no
aiokafka; on the Faust runtime, Faust (so the check can fail).

The service is started as production starts it (`python -m services.router`) against the session's
broker, with `-X importtime`, which makes CPython print every module it imports to stderr: no hook in
the code. It is stopped once its ops port says it is ready (it joined its group), so the modules of the
running loop are in the list, not only those of the start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support import ROOT

pytestmark = pytest.mark.integration

STREAM_FRAMEWORKS = ("faust", "mode", "aiokafka")


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def modules_of_a_real_start(kafka_bootstrap: str, tmp_path: Path, runtime: str) -> set[str]:
    port = free_port()
    env = {
        **os.environ,
        "CEPBUS_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CEPBUS_RUNTIME": runtime,
        "CEPBUS_ROUTER_METRICS_PORT": str(port),
        "CEPBUS_ROUTER_GROUP_ID": f"cepbus-router-imports-{uuid.uuid4().hex[:8]}",
        "CEPBUS_ROUTER_DATABASE_URL": f"sqlite:///{tmp_path / 'router.db'}",
        "CEPBUS_REFERRALS_DATABASE_URL": f"sqlite:///{tmp_path / 'referrals.db'}",
        "CEPBUS_REFERRALS_HTTP_PORT": str(free_port()),
    }
    stderr_path = tmp_path / f"{runtime}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "services.router"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 60
            while not ready(port):
                assert process.poll() is None, stderr_path.read_text(errors="replace")[-2000:]
                assert time.monotonic() < deadline, "the router never became ready"
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    modules = set()
    for line in stderr_path.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                modules.add(name)
    assert "cepbus.runtime.runner" in modules and "services.router.app" in modules  # the list is real
    return modules


def roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_the_batch_runtime_loads_no_stream_framework(kafka_bootstrap: str, tmp_path: Path) -> None:
    modules = modules_of_a_real_start(kafka_bootstrap, tmp_path, "batch")
    assert "confluent_kafka" in roots(modules) and "cepbus.runtime.batch_driver" in modules
    assert not roots(modules) & set(STREAM_FRAMEWORKS), sorted(
        m for m in modules if m.split(".")[0] in STREAM_FRAMEWORKS
    )[:10]


def test_the_faust_runtime_does_load_faust(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The same check on the other runtime finds Faust: it can fail."""
    modules = modules_of_a_real_start(kafka_bootstrap, tmp_path, "faust")
    assert {"faust", "mode"} <= roots(modules) and "cepbus.runtime.faust_driver" in modules
