"""Metrics as a Prometheus server scrapes them: the right series move, labels stay bounded whatever a
client sends, and state gauges are current at every scrape. Worker processes adding up (--workers N) is
in tests/e2e/observability/test_metrics.py."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmserve.config import load_settings
from llmserve.observability.metrics import Metrics, StateSnapshot

MODELS = ("chat", "embed")
DEPLOYMENTS = ("chat-a", "chat-b", "embed#1")

REQUIRED: Mapping[str, str] = {
    "llmserve_requests": "counter",
    "llmserve_request_latency_seconds": "histogram",
    "llmserve_time_to_first_token_seconds": "histogram",
    "llmserve_inter_token_latency_seconds": "histogram",
    "llmserve_tokens": "counter",
    "llmserve_cost_usd": "counter",
    "llmserve_cache_hits": "counter",
    "llmserve_cache_misses": "counter",
    "llmserve_queue_length": "gauge",
    "llmserve_requests_running": "gauge",
    "llmserve_deployment_state": "gauge",
    "llmserve_deployment_failures": "counter",
    "llmserve_model_loaded": "gauge",
    "llmserve_overhead_seconds": "histogram",
    "llmserve_rate_limited": "counter",
    "llmserve_guardrail_blocks": "counter",
}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(MODELS, DEPLOYMENTS)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """A sample as a scrape shows it (0 when the series is absent)."""
    body, _ = metrics.render()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def series(metrics: Metrics, name: str) -> dict[str, float]:
    """Label value -> value for a one-label metric, as scraped."""
    body, _ = metrics.render()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name:
                ((_, label),) = sample.labels.items()
                found[label] = sample.value
    return found


def test_render_is_valid_exposition_with_every_required_metric(metrics: Metrics) -> None:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    families = {family.name: family.type for family in text_string_to_metric_families(body.decode())}
    assert {name: families.get(name) for name in REQUIRED} == dict(REQUIRED)


def test_observe_request_counts_by_model_status_endpoint_and_times_by_model(metrics: Metrics) -> None:
    metrics.observe_request("chat", "/v1/chat/completions", "200", 0.3)
    metrics.observe_request("chat", "/v1/chat/completions", "200", 2.0)
    metrics.observe_request("chat", "/v1/chat/completions", "429", 0.001)
    ok = {"model": "chat", "status": "200", "endpoint": "/v1/chat/completions"}
    assert value(metrics, "llmserve_requests_total", **ok) == 2
    assert value(metrics, "llmserve_requests_total", **{**ok, "status": "429"}) == 1
    assert value(metrics, "llmserve_request_latency_seconds_count", model="chat") == 3
    assert value(metrics, "llmserve_request_latency_seconds_sum", model="chat") == pytest.approx(2.301)
    assert value(metrics, "llmserve_request_latency_seconds_bucket", model="chat", le="0.5") == 2
    assert value(metrics, "llmserve_request_latency_seconds_bucket", model="chat", le="120.0") == 3


def test_each_pipeline_method_moves_its_own_series(metrics: Metrics) -> None:
    metrics.observe_first_token("chat", 0.12)
    for gap in (0.01, 0.02, 0.03):
        metrics.observe_inter_token("chat", gap)
    metrics.add_tokens("chat", 120, 30)
    metrics.add_cost("chat", Decimal("0.0125"))
    metrics.add_cost("chat", Decimal("0.0025"))
    metrics.cache_result("exact", hit=True)
    metrics.cache_result("semantic", hit=False)
    metrics.observe_overhead(0.0007)
    metrics.rate_limited("chat")
    metrics.guardrail_block("prompt_injection")
    metrics.deployment_failure("chat-b")

    assert value(metrics, "llmserve_time_to_first_token_seconds_count", model="chat") == 1
    assert value(metrics, "llmserve_inter_token_latency_seconds_count", model="chat") == 3
    assert value(metrics, "llmserve_inter_token_latency_seconds_bucket", model="chat", le="0.02") == 2
    assert value(metrics, "llmserve_tokens_total", model="chat", type="input") == 120
    assert value(metrics, "llmserve_tokens_total", model="chat", type="output") == 30
    assert value(metrics, "llmserve_cost_usd_total", model="chat") == pytest.approx(0.015)
    assert value(metrics, "llmserve_cache_hits_total", cache_type="exact") == 1
    assert value(metrics, "llmserve_cache_misses_total", cache_type="semantic") == 1
    assert value(metrics, "llmserve_cache_hits_total", cache_type="semantic") == 0
    assert value(metrics, "llmserve_overhead_seconds_bucket", le="0.001") == 1
    assert value(metrics, "llmserve_rate_limited_total", model="chat") == 1
    assert value(metrics, "llmserve_guardrail_blocks_total", rule="prompt_injection") == 1
    assert value(metrics, "llmserve_deployment_failures_total", deployment="chat-b") == 1
    assert value(metrics, "llmserve_deployment_failures_total", deployment="chat-a") == 0
    # Another model's series did not move.
    assert value(metrics, "llmserve_tokens_total", model="embed", type="input") == 0


def test_configured_series_exist_at_zero_before_any_traffic(metrics: Metrics) -> None:
    """rate() and alerts need a series from the start, not from the first event."""
    tokens = [
        (s.labels["model"], s.labels["type"])
        for family in text_string_to_metric_families(metrics.render()[0].decode())
        for s in family.samples
        if s.name == "llmserve_tokens_total"
    ]
    assert sorted(tokens) == [("chat", "input"), ("chat", "output"), ("embed", "input"), ("embed", "output")]
    assert series(metrics, "llmserve_deployment_failures_total") == dict.fromkeys(DEPLOYMENTS, 0.0)
    assert series(metrics, "llmserve_cache_misses_total") == {"exact": 0.0, "semantic": 0.0}


def test_labels_stay_bounded_whatever_a_client_sends(metrics: Metrics) -> None:
    for junk in ("gpt-9", "../../etc/passwd", "x" * 500, "chat "):
        metrics.observe_request(junk, "/v1/chat/completions", "404", 0.01)
        metrics.add_tokens(junk, 5, 5)
        metrics.rate_limited(junk)
    metrics.observe_request("", "/health", "200", 0.001)
    metrics.deployment_failure("made-up")
    metrics.cache_result("fuzzy", hit=True)
    metrics.guardrail_block("blocked_pattern:some-secret-word")
    metrics.guardrail_block("pii:email")
    metrics.guardrail_block("brand-new-rule")

    body = metrics.render()[0].decode()
    models = {
        s.labels["model"]
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if "model" in s.labels
    }
    assert models == {"chat", "embed", "other", ""}
    other = {"model": "other", "status": "404", "endpoint": "/v1/chat/completions"}
    assert value(metrics, "llmserve_requests_total", **other) == 4
    assert value(metrics, "llmserve_tokens_total", model="other", type="input") == 20
    assert value(metrics, "llmserve_requests_total", model="", status="200", endpoint="/health") == 1
    assert value(metrics, "llmserve_deployment_failures_total", deployment="other") == 1
    assert value(metrics, "llmserve_cache_hits_total", cache_type="other") == 1
    assert series(metrics, "llmserve_guardrail_blocks_total") == {
        "blocked_pattern": 1.0,
        "pii:email": 1.0,
        "other": 1.0,
    }
    assert "some-secret-word" not in body and "passwd" not in body


def test_state_gauges_are_read_at_every_scrape(metrics: Metrics) -> None:
    state = StateSnapshot(
        queue_length={"chat": 3},
        running={"chat": 2},
        deployment_states={"chat-a": "closed", "chat-b": "half_open"},
        model_loaded={"chat": False},
    )
    metrics.set_state_source(lambda: state)
    assert series(metrics, "llmserve_queue_length") == {"chat": 3, "embed": 0}
    assert series(metrics, "llmserve_requests_running") == {"chat": 2, "embed": 0}
    assert series(metrics, "llmserve_deployment_state") == {"chat-a": 0, "chat-b": 1, "embed#1": 0}
    assert series(metrics, "llmserve_model_loaded") == {"chat": 0}

    # The pipeline moves on; nothing is pushed: the next scrape reads the new state.
    state = StateSnapshot(
        queue_length={"chat": 0},
        running={"chat": 2},
        deployment_states={"chat-a": "open", "chat-b": "half_open"},
        model_loaded={"chat": True},
    )
    assert series(metrics, "llmserve_queue_length")["chat"] == 0
    assert series(metrics, "llmserve_deployment_state")["chat-a"] == 2
    assert series(metrics, "llmserve_model_loaded") == {"chat": 1}


def test_state_of_unknown_names_folds_into_other(metrics: Metrics) -> None:
    metrics.set_state_source(
        lambda: StateSnapshot(
            queue_length={"chat": 1, "ghost-a": 2, "ghost-b": 5},
            deployment_states={"ghost-1": "half_open", "ghost-2": "open", "chat-a": "weird"},
        )
    )
    assert series(metrics, "llmserve_queue_length") == {"chat": 1, "embed": 0, "other": 7}
    assert series(metrics, "llmserve_deployment_state") == {
        "chat-a": 0,
        "chat-b": 0,
        "embed#1": 0,
        "other": 2,
    }


def test_a_failing_state_source_does_not_fail_the_scrape(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> StateSnapshot:
        raise RuntimeError("boom")

    metrics.set_state_source(broken)
    metrics.observe_request("chat", "/v1/models", "200", 0.01)
    assert value(metrics, "llmserve_requests_total", model="chat", status="200", endpoint="/v1/models") == 1
    assert series(metrics, "llmserve_queue_length") == {}
    assert "metrics state source failed" in caplog.text


def test_two_instances_in_one_process_do_not_share_series() -> None:
    first, second = Metrics(MODELS, DEPLOYMENTS), Metrics(MODELS, DEPLOYMENTS)
    first.add_tokens("chat", 10, 0)
    assert value(first, "llmserve_tokens_total", model="chat", type="input") == 10
    assert value(second, "llmserve_tokens_total", model="chat", type="input") == 0


def test_from_settings_uses_groups_and_router_deployment_ids(tmp_path: Path) -> None:
    upstream = {"name": "chat", "provider": "openai", "model": "m", "api_base": "http://127.0.0.1:9/v1"}
    settings = load_settings(
        data_dir=str(tmp_path),
        models=[upstream, {**upstream, "id": "b"}],
    )
    metrics = Metrics.from_settings(settings)
    assert metrics.model_names == ("chat",)
    assert metrics.deployment_ids == ("chat#0", "b")
