"""The alerting rules an operator loads, checked by Prometheus' own promtool (a process): valid rules, each
alert fires on its situation and stays quiet on its near misses (``promtool test rules``), and the example
scrape config loads them. What needs no promtool is in tests/unit/observability/test_alert_rules.py.

promtool comes with Debian's ``prometheus`` package; without it these tests skip with the reason, or fail
under ``CI=true``, where a missing tool is a broken pipeline.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.fixtures_monitoring import (
    ALERTS,
    ALERTS_TEST,
    EXAMPLE_CONFIG,
    PROMETHEUS_DIR,
    PROMTOOL_TIMEOUT_S,
    alert_rules,
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
