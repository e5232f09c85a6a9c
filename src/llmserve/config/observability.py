"""Metrics, tracing and logging."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmserve.config.base import StrictModel


class TracingSettings(StrictModel):
    enabled: bool | None = Field(
        None, description="None: on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER is set"
    )
    service_name: str = "llmserve"
    exporter: Literal["otlp", "console", "none"] = "otlp"
    endpoint: str | None = Field(None, description="OTLP/HTTP endpoint; default: OTEL_* variables")
    sample_ratio: float = Field(1.0, ge=0, le=1)


class ObservabilitySettings(StrictModel):
    metrics: bool = Field(True, description="Serve Prometheus metrics at GET /metrics")
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line")
    log_payloads: bool = Field(False, description="Log prompt and answer text (PII masked)")
