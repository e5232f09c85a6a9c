"""The Grafana dashboard an operator imports: it asks for a Prometheus datasource, lays its panels out
without overlaps, has the panels the monitoring plan asks for, and every query reads series llmserve
exports. (Its PromQL checked by promtool and drawn from a real Prometheus: tests/e2e/observability.)
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.fixtures_monitoring import METRIC_NAME, exported_series_names, queries


def test_importing_asks_for_a_prometheus_datasource_that_every_query_uses(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36
    (source,) = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"]), panel["title"]


def test_panels_tile_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for cell in (
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        ):
            assert cell not in taken, f"{panel['title']} overlaps {taken[cell]}"
            taken[cell] = panel["title"]


def quantiles(by: str, histogram: str, *levels: str) -> list[str]:
    return [f"histogram_quantile({q}, sum by ({by}) (rate({histogram}_bucket" for q in levels]


@pytest.mark.parametrize(
    ("what", "needles"),
    [
        ("traffic by model and status", ["sum by (model, status) (rate(llmserve_requests_total"]),
        (
            "latency p50/p95/p99",
            quantiles("model, le", "llmserve_request_latency_seconds", "0.5", "0.95", "0.99"),
        ),
        ("TTFT p50/p95", quantiles("model, le", "llmserve_time_to_first_token_seconds", "0.5", "0.95")),
        (
            "inter-token latency",
            quantiles("model, le", "llmserve_inter_token_latency_seconds", "0.5", "0.95"),
        ),
        ("tokens/s in and out", ["sum by (model, type) (rate(llmserve_tokens_total"]),
        ("cost per hour", ["rate(llmserve_cost_usd_total{", "* 3600"]),
        ("cache hit rate", ["llmserve_cache_hits_total", "llmserve_cache_misses_total"]),
        ("queue length and running", ["llmserve_queue_length", "llmserve_requests_running"]),
        ("deployment health", ["llmserve_deployment_state", "llmserve_deployment_failures_total"]),
        ("model loaded", ["llmserve_model_loaded"]),
        ("gateway overhead p95", quantiles("le", "llmserve_overhead_seconds", "0.95")),
    ],
)
def test_the_monitoring_plans_panels_are_there(
    dashboard: dict[str, Any], what: str, needles: list[str]
) -> None:
    text = "\n".join(queries(dashboard))
    missing = [needle for needle in needles if needle not in text]
    assert not missing, f"{what}: no query contains {missing}"


def test_every_query_reads_series_llmserve_exports(dashboard: dict[str, Any]) -> None:
    used = {name for expr in queries(dashboard) for name in METRIC_NAME.findall(expr)}
    assert used <= exported_series_names(), f"not exported: {sorted(used - exported_series_names())}"


def test_the_renderer_fills_in_grafana_variables_and_legends(renderer: ModuleType) -> None:
    expr = 'rate(x{model=~"$model"}[$__rate_interval]) + rate(y[${__rate_interval}])'
    assert renderer.substitute(expr, {"model": ".*", "__rate_interval": "15s"}) == (
        'rate(x{model=~".*"}[15s]) + rate(y[15s])'
    )
    assert (
        renderer.legend("{{model}} {{ status }}", {"model": "tiny-chat", "status": "200"}) == "tiny-chat 200"
    )
    assert renderer.legend("{{model}}", {"job": "llmserve"}) == "job=llmserve"
    assert renderer.format_value(0.25, "s") == "250 ms"
    assert renderer.format_value(0.1, "percentunit") == "10%"
    assert renderer.format_value(1234.5, "currencyUSD") == "$1,234.50"
