"""The alerting rules pass `promtool check rules` and their unit tests (`promtool test rules`), and the
PrometheusRule in deploy/k8s carries exactly the same groups."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.support import ROOT

RULES = ROOT / "deploy/prometheus/cepbus-rules.yml"
RULE_TESTS = ROOT / "deploy/prometheus/cepbus-rules.test.yml"
RULE_TEST_FILES = sorted((ROOT / "deploy/prometheus").glob("*.test.yml"))
PROMETHEUS_RULE = ROOT / "deploy/k8s/base/monitoring/prometheusrule.yaml"

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="promtool absent (Debian package prometheus)")


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    result = subprocess.run(
        [promtool, "test", "rules", *sorted(p.name for p in RULES.parent.glob("*.test.yml"))],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tested = {
        case["alertname"]
        for path in RULE_TEST_FILES
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert alerts == tested


def test_the_prometheus_rule_resource_carries_the_same_groups() -> None:
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"] == yaml.safe_load(RULES.read_text())
