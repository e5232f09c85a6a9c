"""Prometheus metrics: every series llmserve exports, declared once, and how ``GET /metrics`` renders them.

A ``Metrics`` object owns its metric objects on its own ``CollectorRegistry``, so several apps in one
process (the tests) never collide. The pipeline calls its small methods; the gauges that describe
state (queue, running, breakers, loaded models) are read at scrape time from a ``StateSnapshot``
source instead of being pushed on every change (``metrics_state``). Every label is bounded: model
groups and deployments outside the configured ones become ``other``, endpoints are route templates,
rules a known set. With several worker processes the samples are shared through prometheus-client's
multiprocess mode (``metrics_multiprocess``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from llmserve.observability.metrics_multiprocess import (
    MULTIPROC_DIR_ENV,
    LiveStateGauges,
    all_workers_registry,
    forget_dead_workers,
    multiprocess_dir,
)
from llmserve.observability.metrics_state import (
    DEPLOYMENT_STATE_VALUES,
    OTHER,
    StateCollector,
    StateSnapshot,
    StateSource,
    StateValues,
    no_state,
    state_values,
)

if TYPE_CHECKING:
    from llmserve.config import Settings

__all__ = [
    "CACHE_TYPES",
    "DEPLOYMENT_STATE_VALUES",
    "GUARDRAIL_RULES",
    "INTER_TOKEN_BUCKETS",
    "LATENCY_BUCKETS",
    "MULTIPROC_DIR_ENV",
    "OTHER",
    "OVERHEAD_BUCKETS",
    "TTFT_BUCKETS",
    "Metrics",
    "StateSnapshot",
    "StateSource",
    "multiprocess_dir",
]

logger = logging.getLogger(__name__)

CACHE_TYPES = ("exact", "semantic")
# Guardrail rules as GuardrailViolation names them; "blocked_pattern:<name>" counts as blocked_pattern.
GUARDRAIL_RULES = frozenset(
    {"max_messages", "max_message_chars", "prompt_injection", "blocked_pattern", "pii"}
    | {f"pii:{entity}" for entity in ("email", "phone", "card", "iban", "national_id")}
)

# Whole requests: a cache hit in milliseconds up to a long generation on a slow model.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)
# Between streamed tokens: a few ms on a fast GPU, tens of ms on CPU or a busy upstream.
INTER_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1)
# Time spent in llmserve itself (routing, limits, cache, guardrails), not waiting on a model.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass(frozen=True)
class _ModelSeries:
    """The per-model children, resolved once: the hot path skips prometheus-client's label lookup."""

    latency: Histogram
    first_token: Histogram
    inter_token: Histogram
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter
    rate_limited: Counter


class Metrics:
    def __init__(
        self,
        model_names: Iterable[str],
        deployment_ids: Iterable[str],
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.model_names = tuple(dict.fromkeys(model_names))
        self.deployment_ids = tuple(dict.fromkeys(deployment_ids))
        self.registry = registry if registry is not None else CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir()
        self._known_models = {name: name for name in self.model_names}
        self._model_labels = self._known_models | {"": ""}  # "": a request with no model (health, ...)
        self._deployment_labels = {name: name for name in self.deployment_ids}
        self._state_source: StateSource | None = None
        self._declare()
        self._series = {name: self._new_series(name) for name in self.model_names}
        self._request_children: dict[tuple[str, str, str], Counter] = {}
        self._live_state: LiveStateGauges | None = None  # multiprocess: this worker's pushed share
        if self.multiprocess_dir is None:
            self.registry.register(StateCollector(self.state_values))
            self._render_registry = self.registry
        else:
            self._render_registry = all_workers_registry(self.multiprocess_dir)
            self._live_state = LiveStateGauges(self.registry)

    @classmethod
    def from_settings(cls, settings: Settings) -> Metrics:
        """The configured model groups and deployments (ids as the router names them)."""
        from llmserve.config import deployment_id_of

        return cls(
            (entry.name for entry in settings.models),
            (deployment_id_of(entry, index) for index, entry in enumerate(settings.models)),
        )

    @property
    def multiprocess(self) -> bool:
        return self.multiprocess_dir is not None

    # -- what the pipeline calls -------------------------------------------------------------------

    def observe_request(self, model: str, endpoint: str, status: str, seconds: float) -> None:
        """One HTTP request (MetricsMiddleware calls this; the pipeline does not)."""
        label = self._model_labels.get(model, OTHER)
        key = (label, status, endpoint)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self._requests.labels(label, status, endpoint)
        counter.inc()
        self._for(label).latency.observe(seconds)

    def observe_first_token(self, model: str, seconds: float) -> None:
        self._for(model).first_token.observe(seconds)

    def observe_inter_token(self, model: str, seconds: float) -> None:
        self._for(model).inter_token.observe(seconds)

    def add_tokens(self, model: str, input_tokens: int, output_tokens: int) -> None:
        series = self._for(model)
        if input_tokens > 0:
            series.input_tokens.inc(input_tokens)
        if output_tokens > 0:
            series.output_tokens.inc(output_tokens)

    def add_cost(self, model: str, usd: Decimal) -> None:
        if usd > 0:
            self._for(model).cost.inc(float(usd))

    def cache_result(self, cache_type: str, hit: bool) -> None:
        label = cache_type if cache_type in CACHE_TYPES else OTHER
        (self._cache_hits if hit else self._cache_misses).labels(label).inc()

    def observe_overhead(self, seconds: float) -> None:
        self._overhead.observe(seconds)

    def rate_limited(self, model: str) -> None:
        self._for(model).rate_limited.inc()

    def guardrail_block(self, rule: str) -> None:
        self._guardrail_blocks.labels(_rule_label(rule)).inc()

    def deployment_failure(self, deployment_id: str) -> None:
        self._deployment_failures.labels(self._deployment_labels.get(deployment_id, OTHER)).inc()

    def set_state_source(self, source: StateSource | None) -> None:
        """``source()`` is called at every scrape (and, multiprocess, around every request)."""
        self._state_source = source

    # -- exposition --------------------------------------------------------------------------------

    def refresh_state(self) -> None:
        """Multiprocess mode: push this worker's state into the shared gauges. Otherwise a no-op:
        the scrape-time collector reads the state itself."""
        if self._live_state is not None:
            self._live_state.push(self.state_values())

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        if self.multiprocess_dir is not None:
            self.refresh_state()
            forget_dead_workers(self.multiprocess_dir)
        return generate_latest(self._render_registry), CONTENT_TYPE_LATEST

    def state_values(self) -> StateValues:
        """Per state gauge, label value -> value; {} series when the source is unset or fails."""
        if self._state_source is None:
            return no_state()
        try:
            snapshot = self._state_source()
        except Exception:  # a broken source must not fail the scrape (or a request)
            logger.exception("metrics state source failed")
            return no_state()
        return state_values(snapshot, self._known_models, self._deployment_labels)

    # -- internals ---------------------------------------------------------------------------------

    def _declare(self) -> None:
        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, labels, registry=self.registry)

        def histogram(name: str, documentation: str, buckets: Sequence[float], *labels: str) -> Histogram:
            return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

        self._requests = counter("llmserve_requests", "HTTP requests", "model", "status", "endpoint")
        self._latency = histogram(
            "llmserve_request_latency_seconds", "Latency to the last byte sent", LATENCY_BUCKETS, "model"
        )
        self._first_token = histogram(
            "llmserve_time_to_first_token_seconds", "Request to first streamed token", TTFT_BUCKETS, "model"
        )
        self._inter_token = histogram(
            "llmserve_inter_token_latency_seconds", "Between streamed tokens", INTER_TOKEN_BUCKETS, "model"
        )
        self._tokens = counter("llmserve_tokens", "Tokens (input: prompt; output: reply)", "model", "type")
        self._cost = counter("llmserve_cost_usd", "Spend in USD at list prices", "model")
        self._cache_hits = counter("llmserve_cache_hits", "Response cache hits", "cache_type")
        self._cache_misses = counter("llmserve_cache_misses", "Response cache misses", "cache_type")
        self._overhead = histogram(
            "llmserve_overhead_seconds", "Time in llmserve itself, upstream waits excluded", OVERHEAD_BUCKETS
        )
        self._rate_limited = counter("llmserve_rate_limited", "Requests refused by a rate limit", "model")
        self._guardrail_blocks = counter("llmserve_guardrail_blocks", "Requests a guardrail refused", "rule")
        self._deployment_failures = counter(
            "llmserve_deployment_failures", "Failed calls to a deployment (each attempt)", "deployment"
        )
        for cache_type in CACHE_TYPES:
            self._cache_hits.labels(cache_type)
            self._cache_misses.labels(cache_type)
        for deployment in self.deployment_ids:
            self._deployment_failures.labels(deployment)

    def _new_series(self, label: str) -> _ModelSeries:
        return _ModelSeries(
            latency=self._latency.labels(label),
            first_token=self._first_token.labels(label),
            inter_token=self._inter_token.labels(label),
            input_tokens=self._tokens.labels(label, "input"),
            output_tokens=self._tokens.labels(label, "output"),
            cost=self._cost.labels(label),
            rate_limited=self._rate_limited.labels(label),
        )

    def _for(self, model: str) -> _ModelSeries:
        series = self._series.get(model)
        if series is None:  # "" or a group outside the configured ones: built on first use
            label = self._model_labels.get(model, OTHER)
            series = self._series.get(label)
            if series is None:
                series = self._series[label] = self._new_series(label)
        return series


def _rule_label(rule: str) -> str:
    if rule in GUARDRAIL_RULES:
        return rule
    base = rule.split(":", 1)[0]
    return base if base in GUARDRAIL_RULES else OTHER
