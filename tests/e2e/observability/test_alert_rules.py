"""The alerting rules an operator loads: valid for Prometheus, each alert fires on its situation and stays
quiet on its near misses (``promtool test rules``), and every series they read is one llmserve exports.

promtool comes with Debian's ``prometheus`` package; without it these tests skip with the reason, or fail
under ``CI=true``, where a missing tool is a broken pipeline.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.fixtures_monitoring import (
    ALERTS,
    ALERTS_TEST,
    EXAMPLE_CONFIG,
    METRIC_NAME,
    PROMETHEUS_DIR,
    PROMTOOL_TIMEOUT_S,
    alert_rules,
    exported_series_names,
    unavailable,
)

pytestmark = pytest.mark.e2e


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
