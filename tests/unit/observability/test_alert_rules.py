"""The alerting rules an operator loads: valid for Prometheus, each alert fires on its situation and stays
quiet on its near misses (``promtool test rules``), and every series they read is one llmserve exports.

promtool comes with Debian's ``prometheus`` package; without it these tests skip with the reason, or fail
under ``CI=true``, where a missing tool is a broken pipeline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from llmserve.observability.metrics import Metrics

PROMETHEUS_DIR = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
METRIC_NAME = re.compile(r"\bllmserve_[a-z_]+")
PROMTOOL_TIMEOUT_S = 60


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true: a missing tool is a broken pipeline")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool is missing (apt-get install prometheus)")
    return path


def run_promtool(promtool: str, *args: str) -> str:
    done = subprocess.run(
        [promtool, *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def exported_series_names() -> set[str]:
    """Every series name llmserve's /metrics can carry (counters' _total, histograms' parts)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    families: list[Metric] = list(Metrics(["m"], ["d"]).registry.collect())
    return {family.name + suffix for family in families for suffix in suffixes.get(family.type, ("",))}


def test_prometheus_accepts_the_alerting_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", ALERTS.name)
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_each_alert_fires_on_its_situation_and_not_on_near_misses(promtool: str) -> None:
    assert "SUCCESS" in run_promtool(promtool, "test", "rules", ALERTS_TEST.name)


def test_the_example_scrape_config_is_valid_and_loads_the_alerts(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", EXAMPLE_CONFIG.name)
    assert "SUCCESS: 1 rule files found" in output


def test_every_alert_has_a_firing_and_a_quiet_test_case() -> None:
    cases = [
        case for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    for rule in alert_rules():
        expectations = [bool(case["exp_alerts"]) for case in cases if case["alertname"] == rule["alert"]]
        assert True in expectations, f"no test case where {rule['alert']} fires"
        assert False in expectations, f"no test case where {rule['alert']} stays quiet"


def test_the_monitoring_plans_alerts_are_all_there_with_severity_and_explanation() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) == {
        "LLMServeHighErrorRate",
        "LLMServeHighLatency",
        "LLMServeCostSpike",
        "LLMServeQueueBacklog",
        "LLMServeCircuitOpen",
        "LLMServeModelNotLoaded",
    }
    assert rules["LLMServeCircuitOpen"]["for"] == "1m"
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        if name != "LLMServeCircuitOpen":
            assert rule["for"] == "5m", name


def test_alerts_read_only_series_that_llmserve_exports() -> None:
    used = {name for rule in alert_rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert used, "no llmserve series in the alerts"
    assert used <= exported_series_names(), f"not exported: {sorted(used - exported_series_names())}"
