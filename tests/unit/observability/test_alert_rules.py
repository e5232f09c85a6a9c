"""The alerting rules an operator loads, read as YAML: every alert the monitoring plan asks for, each with a
firing and a quiet test case, and every series they read is one llmserve exports. (promtool's verdicts on
the same files are in tests/e2e/observability/test_alert_rules.py.)"""

from __future__ import annotations

import yaml

from tests.fixtures_monitoring import ALERTS_TEST, METRIC_NAME, alert_rules, exported_series_names


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
