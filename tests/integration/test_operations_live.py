"""Operations against the running services: health endpoints, every metric the dashboard and the
alerts use is exposed, a real Prometheus (Debian's) scrapes the three services during a demo-sized
run and answers PromQL, and one person's path can be followed across the services' JSON logs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cepbus_app.demo.loop import plan
from cepbus_app.supervisor import SERVICES
from tests.conftest import free_port
from tests.support.bus import RunningBus, wait_for_ids
from tests.support.factories import intake, service_id

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/k8s/base/monitoring/dashboards/cepbus-national.json"
RULES = ROOT / "deploy/prometheus/cepbus-rules.yml"
METRIC_NAME = re.compile(r"\b(cepbus_[a-z0-9_]+)")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|count|sum)$")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_ready(port: int, timeout_s: float = 60.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout_s
    answer = _get(f"http://127.0.0.1:{port}/readyz")
    while answer[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = _get(f"http://127.0.0.1:{port}/readyz")
    return answer


def test_every_service_answers_liveness_and_readiness(bus: RunningBus) -> None:
    for service, port in bus.ports.items():
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200, service
        status, body = _wait_ready(port)
        assert status == 200, f"{service} not ready: {body}"
        assert json.loads(body)["ok"] is True


def _exposed_names(bus: RunningBus) -> dict[str, set[str]]:
    """Metric names declared by `# TYPE` lines on each service's /metrics (samples or not)."""
    exposed = {}
    for service, port in bus.ports.items():
        _, text = _get(f"http://127.0.0.1:{port}/metrics")
        exposed[service] = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    return exposed


def _names_used(expressions: list[str]) -> set[str]:
    return {HISTOGRAM_SUFFIX.sub("", name) for expr in expressions for name in METRIC_NAME.findall(expr)}


def test_every_metric_of_the_dashboard_and_the_alerts_is_exposed(bus: RunningBus) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard_exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    dashboard_exprs += [dashboard["templating"]["list"][1]["definition"]]
    alert_exprs = [
        rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    used = _names_used(dashboard_exprs) | _names_used(alert_exprs)
    assert len(used) >= 15  # the panels do use the bus's metrics
    exposed = set().union(*_exposed_names(bus).values())
    # a histogram's or a counter's TYPE line names the family; its samples add _bucket / _total
    missing = {name for name in used if name not in exposed and HISTOGRAM_SUFFIX.sub("", name) not in exposed}
    assert not missing, f"used by the dashboard or the alerts but exposed by no service: {sorted(missing)}"


class PrometheusServer:
    def __init__(self, binary: str, workdir: Path, ports: dict[str, int]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": f"cepbus-{service}", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for service, port in ports.items()
            ],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body = _get(url)
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", body
        return list(answer["data"]["result"])

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, want: float, timeout_s: float = 60.0) -> float | None:
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            try:
                value = self.scalar(promql)
            except (OSError, ValueError):  # not listening yet
                value = None
            if value == want:
                break
            time.sleep(0.5)
        return value

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def prometheus(bus: RunningBus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus absent (Debian package prometheus)")
    server = PrometheusServer(binary, tmp_path_factory.mktemp("prometheus"), bus.ports)
    try:
        targets_up = server.wait_for('count(up{job=~"cepbus-.*"} == 1)', len(SERVICES), timeout_s=60)
        assert targets_up == len(SERVICES), server.log_path.read_text()[-2000:]
        yield server
    finally:
        server.stop()


def test_prometheus_sees_exactly_the_notices_of_a_demo_sized_run(
    bus: RunningBus, prometheus: PrometheusServer
) -> None:
    for port in bus.ports.values():
        assert _wait_ready(port)[0] == 200
    assert prometheus.wait_for("min(cepbus_service_ready)", 1.0) == 1.0
    issued = "sum(cepbus_notices_issued_total)"
    delays = "sum(cepbus_intake_to_notice_seconds_count)"
    time.sleep(2.0)  # a scrape after anything earlier tests left in flight
    before_issued = prometheus.scalar(issued) or 0.0
    before_delays = prometheus.scalar(delays) or 0.0
    before_dead_letters = prometheus.scalar("sum(cepbus_dead_letters_total) or vector(0)")
    intakes, choices, expected = plan(300, seed=11)
    notices = expected.by_type()["NoticeIssued"]
    with bus.publisher() as publisher:
        publisher.publish_many(intakes)
        publisher.publish_many(choices)
    assert not wait_for_ids(bus, set(expected.ids), timeout_s=90)
    assert prometheus.wait_for(f"{issued} - {before_issued}", float(notices)) == notices
    assert prometheus.wait_for(f"{delays} - {before_delays}", float(notices)) == notices
    regions_seen = prometheus.query("sum by (region) (cepbus_notices_issued_total)")
    assert len(regions_seen) >= 10  # the simulator spreads intakes over the country
    # consumer lag per partition, sampled by the notifier itself: all six partitions, caught up
    lag = 'cepbus_consumer_lag_messages{service="notifier", topic="cep.notice.requested"}'
    assert prometheus.wait_for(f"count({lag})", 6.0) == 6.0
    assert prometheus.wait_for(f"max({lag})", 0.0) == 0.0
    # operator silence: every organisation of the directory has a series; a publisher of this run is recent
    assert prometheus.scalar('count(cepbus_operator_silent_seconds{service="router"})') == 90.0
    # only the router, whose store remembers silence across restarts, exports it (alerts take the min)
    assert prometheus.query('cepbus_operator_silent_seconds{service!="router"}') == []
    recent_org = intakes[-1].operator_id
    silent = prometheus.scalar(f'min(cepbus_operator_silent_seconds{{organisation="{recent_org}"}})')
    assert silent is not None and silent < 60.0
    # the only dead letters are the intakes the rules reject (dated before their region opened), one
    # each, from the router (the counter is absent until a first one, hence `or vector(0)`)
    want = before_dead_letters + expected.decisions["rejected"]
    assert prometheus.wait_for("sum(cepbus_dead_letters_total) or vector(0)", want) == want


def test_one_persons_path_can_be_followed_across_the_three_services_logs(bus: RunningBus) -> None:
    first = intake(cadre=True)
    correlation = first.envelope.correlation_id
    with bus.publisher() as publisher:
        publisher.publish(first)
    notice_id = service_id(first.event_id, "notice-requested", "notice-issued")
    assert not wait_for_ids(bus, {str(first.event_id), notice_id})
    seen: dict[str, set[str]] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = {}
        for service in SERVICES:
            for line in bus.supervisor.processes[service].log_path.read_text(errors="replace").splitlines():
                if correlation not in line or not line.startswith("{"):
                    continue
                record = json.loads(line)
                if record.get("correlation_id") == correlation and record["event"] == "event_received":
                    assert record["service"] == service
                    seen.setdefault(service, set()).add(record["event_type"])
        if seen.get("ledger", set()) >= {"fr.cepbus.NoticeIssued", "fr.cepbus.IntakeDecided"}:
            break
        time.sleep(0.5)
    assert seen["router"] == {"fr.cepbus.IntakeRegistered", "fr.cepbus.NoticeIssued"}  # notices: router state
    assert seen["notifier"] == {"fr.cepbus.NoticeRequested"}
    assert seen["ledger"] == {
        "fr.cepbus.IntakeRegistered",
        "fr.cepbus.IntakeDecided",
        "fr.cepbus.NoticeRequested",
        "fr.cepbus.NoticeIssued",
    }
