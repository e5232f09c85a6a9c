"""What the monitoring tests share: the shipped Prometheus rules and Grafana dashboard, the series llmserve
exports, and the dashboard renderer (tools/render_dashboard.py) loaded as a module.

Prometheus' own tools (promtool, prometheus) come with Debian's ``prometheus`` package; the tests that
run them (tests/e2e/observability) skip without them with the reason, or fail under ``CI=true``, where a
missing tool is a broken pipeline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from llmserve.observability.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "llmserve.json"
RENDERER = ROOT / "tools" / "render_dashboard.py"
METRIC_NAME = re.compile(r"\bllmserve_[a-z_]+")
PROMTOOL_TIMEOUT_S = 60


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true: a missing tool is a broken pipeline")
    pytest.skip(reason)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def exported_series_names() -> set[str]:
    """Every series name llmserve's /metrics can carry (counters' _total, histograms' parts)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    families: list[Metric] = list(Metrics(["m"], ["d"]).registry.collect())
    return {family.name + suffix for family in families for suffix in suffixes.get(family.type, ("",))}


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


@pytest.fixture(scope="module")
def renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_dashboard", RENDERER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module
