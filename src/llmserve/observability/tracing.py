"""OpenTelemetry traces: off by default; on with config or the standard ``OTEL_*`` variables.

A trace per request: the server span (``TracingMiddleware``), the pipeline's steps under it
(admission, cache lookup, routing: ``span()``), and a CLIENT span per provider attempt
(``trace_attempt``) whose context reaches the upstream as ``traceparent`` (``inject_trace_context``).
Attribute names follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``), plus
``llmserve.*`` for what only a gateway knows (deployment, attempt, cache status).

The SDK is the optional ``otel`` extra and is imported only when tracing is on. No global
TracerProvider is installed: ``setup_tracing`` returns a handle, the middleware makes it the active
one for the length of each request (a context variable, like the request id), and every helper here
reads it there. With tracing off each helper costs one ContextVar lookup, and two apps in one
process (tests) never share spans. No prompt or answer text goes into a span, nor an exception's
message (upstream errors may quote the prompt): a failure is recorded by its type. How the
settings and the ``OTEL_*`` variables combine into exporters, sampler and service name is
``tracing_config``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from llmserve import __version__
from llmserve.errors import LLMServeError, UpstreamError
from llmserve.observability.tracing_config import EXPORTERS as EXPORTERS
from llmserve.observability.tracing_config import OTLP_TRACES_PATH as OTLP_TRACES_PATH
from llmserve.observability.tracing_config import (
    batch_processor,
    exporters_of,
    sample_ratio_of,
    service_name_of,
    tracing_wanted,
)
from llmserve.observability.tracing_config import otlp_endpoint as otlp_endpoint
from llmserve.types import ChatInput, TextInput, Usage

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from opentelemetry.util.types import AttributeValue

    from llmserve.config import Settings
    from llmserve.types import GenerationInput, GenerationOptions

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'llmserve[otel]'"

_active: ContextVar[TracingHandle | None] = ContextVar("llmserve_tracing", default=None)
UNTRACED: Final = contextlib.nullcontext(None)
_NO_ATTRIBUTES: Final[Mapping[str, AttributeValue]] = MappingProxyType({})


class TracingUnavailable(RuntimeError):
    """Tracing was switched on in the config, but the OpenTelemetry SDK is not installed."""


@dataclass(eq=False)
class TracingHandle:
    """What ``setup_tracing`` built: the provider (flushed by ``shutdown``/``aclose``) and its tracer."""

    provider: TracerProvider
    tracer: Tracer
    propagator: TraceContextTextMapPropagator
    exporters: tuple[str, ...] = ()
    _closed: bool = field(default=False, repr=False)

    @contextlib.contextmanager
    def activate(self) -> Iterator[TracingHandle]:
        """Makes this the tracer of the spans started in this context (the middleware does it per request)."""
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def shutdown(self) -> None:
        """Exports the spans still queued and stops the exporters (blocks up to their timeout)."""
        if not self._closed:
            self._closed = True
            self.provider.shutdown()

    async def aclose(self) -> None:
        """``shutdown()`` off the event loop: exporting is blocking network I/O."""
        await asyncio.to_thread(self.shutdown)


def setup_tracing(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    span_processor: SpanProcessor | None = None,
) -> TracingHandle | None:
    """The tracing handle, or None when tracing is off (then nothing is imported or started).

    ``environ`` holds the ``OTEL_*`` variables that decide (default: the process environment; the OTLP
    exporter still reads its headers, timeout and TLS files from the process environment).
    ``span_processor`` replaces the configured exporters (tests: an ``InMemorySpanExporter`` in a
    ``SimpleSpanProcessor``).
    """
    config = settings.observability.tracing
    env = os.environ if environ is None else environ
    exporters = exporters_of(config, env)
    if not tracing_wanted(config, env, exporters) and span_processor is None:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:
        message = f"tracing needs the OpenTelemetry SDK ({INSTALL_HINT}): {exc}"
        if config.enabled:
            raise TracingUnavailable(message) from exc
        logger.warning("OTEL_* variables are set but tracing stays off: %s", message)
        return None
    resource = Resource.create({"service.name": service_name_of(config, env), "service.version": __version__})
    ratio = sample_ratio_of(config, env)
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(ratio)))
    if span_processor is not None:
        provider.add_span_processor(span_processor)
        exporters = ()
    for name in exporters:
        provider.add_span_processor(batch_processor(name, config, env))
    logger.info("tracing on: exporters %s, sample ratio %g", ", ".join(exporters) or "none", ratio)
    tracer = provider.get_tracer("llmserve", __version__)
    return TracingHandle(provider, tracer, TraceContextTextMapPropagator(), exporters)


# -- spans for the request pipeline --------------------------------------------------------------


def span(name: str, **attributes: AttributeValue | None) -> contextlib.AbstractContextManager[Span | None]:
    """``with span("llmserve.admission") as s:`` a child of the current span; yields None when tracing
    is off. An exception leaving the block marks the span failed (by type, not message)."""
    tracer = child_tracer()
    if tracer is None:
        return UNTRACED
    return _child_span(tracer, name, attributes)


def child_tracer() -> Tracer | None:
    """The active tracer, or None when tracing is off or the current trace is not sampled (its
    children would not be either: the sampler is parent-based), which spares starting dropped spans."""
    handle = _active.get()
    if handle is None:
        return None
    from opentelemetry.trace import get_current_span

    parent = get_current_span()
    if not parent.is_recording() and parent.get_span_context().is_valid:
        return None
    return handle.tracer


@contextlib.contextmanager
def _child_span(tracer: Tracer, name: str, attributes: Mapping[str, AttributeValue | None]) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name, attributes=_present(attributes), record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as exc:
            record_error(current, exc)
            raise


def current_span() -> Span | None:
    """The span of the code running now (the request's server span, or a child), None when tracing is
    off or this request is not sampled."""
    if _active.get() is None:
        return None
    from opentelemetry import trace

    current = trace.get_current_span()
    return current if current.is_recording() else None


def operation_name(request: GenerationInput | None) -> str:
    """``gen_ai.operation.name``: chat, text_completion, or embeddings (no generation input)."""
    if isinstance(request, ChatInput):
        return "chat"
    if isinstance(request, TextInput):
        return "text_completion"
    return "embeddings"


def request_attributes(
    model: str | None, options: GenerationOptions | None = None, *, operation: str = "chat"
) -> Mapping[str, AttributeValue]:
    """GenAI request attributes (``gen_ai.request.*``) for ``span(name, **request_attributes(...))``;
    empty (and free) when tracing is off."""
    if _active.get() is None:
        return _NO_ATTRIBUTES
    attributes: dict[str, AttributeValue] = {"gen_ai.operation.name": operation}
    if model:
        attributes["gen_ai.request.model"] = model
    if options is not None:
        add_request_options(attributes, options)
    return attributes


def add_request_options(attributes: MutableMapping[str, AttributeValue], options: GenerationOptions) -> None:
    if options.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = options.max_tokens
    attributes["gen_ai.request.temperature"] = options.temperature
    attributes["gen_ai.request.top_p"] = options.top_p
    if options.top_k:
        attributes["gen_ai.request.top_k"] = options.top_k
    if options.n != 1:
        attributes["gen_ai.request.choice.count"] = options.n
    if options.seed is not None:
        attributes["gen_ai.request.seed"] = options.seed
    if options.presence_penalty:
        attributes["gen_ai.request.presence_penalty"] = options.presence_penalty
    if options.frequency_penalty:
        attributes["gen_ai.request.frequency_penalty"] = options.frequency_penalty


def record_usage(span: Span | None, usage: Usage | None, finish_reasons: Sequence[str] = ()) -> None:
    """Token counts and finish reasons (``gen_ai.usage.*``, ``gen_ai.response.finish_reasons``)."""
    if span is None:
        return
    attributes: dict[str, AttributeValue] = {}
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
        if usage.estimated:
            attributes["llmserve.usage.estimated"] = True
    if finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(finish_reasons)
    span.set_attributes(attributes)  # at once: the SDK takes its lock per call


def record_error(span: Span | None, exc: BaseException) -> None:
    """A failed span: ``error.type`` and status ERROR with the exception's type; a cancellation (a client
    gone, a hedge that lost) is ``llmserve.cancelled``, not an error."""
    if span is None:
        return
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        span.set_attribute("llmserve.cancelled", True)
        return
    from opentelemetry.trace import Status, StatusCode

    error_type = type(exc).__qualname__
    attributes: dict[str, AttributeValue] = {"error.type": error_type}
    if isinstance(exc, LLMServeError) and exc.code:
        attributes["llmserve.error.code"] = exc.code
    if isinstance(exc, UpstreamError):
        attributes["llmserve.upstream.error_kind"] = exc.kind
        if exc.upstream_status is not None:
            attributes["http.response.status_code"] = exc.upstream_status
    span.set_attributes(attributes)
    span.set_status(Status(StatusCode.ERROR, error_type))


def inject_trace_context(headers: dict[str, str]) -> dict[str, str]:
    """Adds the current span's ``traceparent`` (and ``tracestate``) to an upstream request's headers,
    so a remote vLLM or OpenAI-compatible server continues our trace. Unchanged when tracing is off."""
    handle = _active.get()
    if handle is not None:
        handle.propagator.inject(headers)
    return headers


def _present(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {key: value for key, value in attributes.items() if value is not None}
