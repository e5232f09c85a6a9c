"""Which traces to make and where to send them: the tracing settings merged with the ``OTEL_*`` variables.

A setting given explicitly in the config wins; otherwise the standard OpenTelemetry SDK variables
decide (exporter list, sampler, service name, OTLP endpoint and protocol), then the config's
defaults. Pure functions of the settings and an environment mapping, so tests pass their own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

    from llmserve.config import TracingSettings

logger = logging.getLogger(__name__)

OTLP_TRACES_PATH = "/v1/traces"
EXPORTERS: Final = ("otlp", "console")
# OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the full URL; OTEL_EXPORTER_OTLP_ENDPOINT the base (spec).
_ENV_ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_RATIO_SAMPLERS: Final = frozenset({"traceidratio", "parentbased_traceidratio"})
_OFF_SAMPLERS: Final = frozenset({"always_off", "parentbased_always_off"})


def exporters_of(config: TracingSettings, env: Mapping[str, str]) -> tuple[str, ...]:
    """The config's exporter when set explicitly, else ``OTEL_TRACES_EXPORTER`` (a list), else otlp."""
    listed = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if "exporter" in config.model_fields_set or not listed:
        return () if config.exporter == "none" else (config.exporter,)
    names = [name.strip().lower() for name in listed.split(",") if name.strip()]
    if unsupported := [name for name in names if name not in (*EXPORTERS, "none")]:
        logger.warning("OTEL_TRACES_EXPORTER: %s not supported (otlp, console, none)", ", ".join(unsupported))
    if "none" in names:
        return ()
    return tuple(dict.fromkeys(name for name in names if name in EXPORTERS))


def tracing_wanted(config: TracingSettings, env: Mapping[str, str], exporters: Sequence[str]) -> bool:
    """``tracing.enabled`` when set; otherwise on when an ``OTEL_*`` variable (or the config's endpoint)
    asks for an exporter we have, unless ``OTEL_SDK_DISABLED`` says no."""
    if config.enabled is not None:
        return config.enabled
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    asked = bool(
        env.get("OTEL_TRACES_EXPORTER") or config.endpoint or any(env.get(name) for name in _ENV_ENDPOINTS)
    )
    return asked and bool(exporters)


def service_name_of(config: TracingSettings, env: Mapping[str, str]) -> str:
    """The config's, else ``OTEL_SERVICE_NAME``, else ``service.name`` of ``OTEL_RESOURCE_ATTRIBUTES``."""
    if "service_name" in config.model_fields_set:
        return config.service_name
    if name := env.get("OTEL_SERVICE_NAME", "").strip():
        return name
    for pair in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = pair.partition("=")
        if key.strip() == "service.name" and value.strip():
            return value.strip()
    return config.service_name


def sample_ratio_of(config: TracingSettings, env: Mapping[str, str]) -> float:
    """The config's, else what ``OTEL_TRACES_SAMPLER`` (and its argument) ask for, in [0, 1]."""
    if "sample_ratio" in config.model_fields_set:
        return config.sample_ratio
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler in _OFF_SAMPLERS:
        return 0.0
    if sampler in _RATIO_SAMPLERS:
        argument = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
        try:
            return min(1.0, max(0.0, float(argument)))
        except ValueError:
            logger.warning(
                "OTEL_TRACES_SAMPLER_ARG=%r is not a ratio; sampling %g", argument, config.sample_ratio
            )
    return config.sample_ratio


def otlp_endpoint(config: TracingSettings, env: Mapping[str, str]) -> str | None:
    """The traces URL: the config's endpoint or ``OTEL_EXPORTER_OTLP_ENDPOINT`` are a base URL that
    gets ``/v1/traces``; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as it is. None: the SDK default."""
    if config.endpoint:
        base = config.endpoint.rstrip("/")
        return base if base.endswith(OTLP_TRACES_PATH) else base + OTLP_TRACES_PATH
    if traces := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return traces
    if base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return base.rstrip("/") + OTLP_TRACES_PATH
    return None


def batch_processor(name: str, config: TracingSettings, env: Mapping[str, str]) -> SpanProcessor:
    """The span processor of exporter ``name`` (otlp or console); the SDK is imported only here."""
    # Batched for the console too: the export thread writes, never the event loop.
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if name == "console":
        exporter = ConsoleSpanExporter(service_name=service_name_of(config, env))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol and protocol.strip() != "http/protobuf":
            logger.warning("OTLP protocol %r is not supported; exporting over http/protobuf", protocol)
        exporter = OTLPSpanExporter(endpoint=otlp_endpoint(config, env))
    return BatchSpanProcessor(exporter)
