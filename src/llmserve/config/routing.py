"""How requests find a deployment: strategy, retries, fallbacks, hedging, circuit breaker, and the
complexity routing of the model ``auto``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmserve.config.base import StrictModel


class CircuitBreakerSettings(StrictModel):
    failure_threshold: int = Field(5, gt=0, description="Consecutive failures that open the breaker")
    error_rate_threshold: float = Field(
        0.5, gt=0, le=1, description="Share of failed calls in the window that opens it"
    )
    window_seconds: float = Field(30.0, gt=0)
    min_calls: int = Field(10, gt=0, description="Calls in the window before the error rate counts")
    cooldown_seconds: float = Field(15.0, gt=0, description="Open this long, then one half-open probe")
    startup_grace_seconds: float = Field(
        30.0,
        ge=0,
        description="Until a deployment first answers, within this long of start, an open breaker probes "
        "again after 1 s instead of the cooldown (an upstream that comes up late serves at once); 0: off",
    )


class ComplexityRouting(StrictModel):
    """Where requests for the model ``auto`` go, by how hard they look (the seed's complexity routing)."""

    simple: str | None = None
    medium: str | None = None
    complex: str | None = None
    low_latency: str | None = Field(None, description="For requirements: low_latency")
    high_quality: str | None = Field(None, description="For requirements: high_quality")
    long_prompt_chars: int = Field(2000, gt=0, description="Longer prompts count as complex")
    short_prompt_chars: int = Field(200, gt=0, description="Shorter prompts without keywords are simple")
    complex_keywords: list[str] = Field(
        default_factory=lambda: [
            "analyze",
            "analyse",
            "prove",
            "explain why",
            "step by step",
            "compare",
            "design",
            "refactor",
            "derive",
            "分析",
            "证明",
            "为什么",
            "比较",
            "设计",
            "推导",
        ]
    )


class RouterSettings(StrictModel):
    strategy: Literal["weighted", "least-busy", "lowest-latency", "lowest-cost", "usage-based"] = "weighted"
    retries: int = Field(2, ge=0, le=10, description="Extra tries after the first, across deployments")
    backoff_base_seconds: float = Field(0.1, ge=0)
    backoff_max_seconds: float = Field(10.0, gt=0)
    max_retry_after_seconds: float = Field(
        30.0, ge=0, description="A longer upstream Retry-After is not waited for: fall back instead"
    )
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    context_window_fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    hedge_after_ms: float | None = Field(
        None, gt=0, description="Send a second copy to another deployment when the first is this slow"
    )
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
    latency_ewma_alpha: float = Field(0.3, gt=0, le=1)
    complexity: ComplexityRouting = Field(default_factory=ComplexityRouting)
