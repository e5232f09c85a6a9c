"""The router's telemetry: the CLIENT span of each provider attempt, and how a request was answered.

Here rather than in observability/: these spans describe routing facts (deployments, attempts,
fallbacks), and observability sits below routing in the layers.
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableMapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from llmserve.observability.tracing import (
    UNTRACED,
    add_request_options,
    child_tracer,
    operation_name,
    record_error,
    record_usage,
)
from llmserve.types import Completion, Delta, GenerationInput, StreamEvent, Usage

if TYPE_CHECKING:
    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

    from llmserve.routing.deployment import Deployment
    from llmserve.routing.route_info import RouteInfo

# gen_ai.provider.name by provider kind (well-known values where the conventions list one).
_GEN_AI_PROVIDERS: Final = MappingProxyType(
    {"openai": "openai", "anthropic": "anthropic", "local": "llmserve"}
)


def record_route(
    span: Span | None, route: RouteInfo, cache_status: str, *, response_model: str | None = None
) -> None:
    """How the request was answered: group (``gen_ai.response.model`` unless given), deployment,
    attempts, fallback, cache status."""
    if span is None:
        return
    attributes: dict[str, AttributeValue] = {
        "gen_ai.response.model": response_model or route.group,
        "llmserve.model_group": route.group,
        "llmserve.attempts": route.attempts,
        "llmserve.fallback_used": route.fallback_used,
        "llmserve.cache_status": cache_status,
    }
    if route.deployment:
        attributes["llmserve.deployment"] = route.deployment
    span.set_attributes(attributes)


class AttemptTrace:
    """The CLIENT span of one call to one deployment; ``UNTRACED_ATTEMPT`` (all no-ops) when off.

    Not the current span by itself: a stream's span lives until the stream ends, across the caller's
    awaits, so the code that sends the request enters ``activated()`` for just that part.
    """

    __slots__ = ("_ended", "_finish_reasons", "_span")

    def __init__(self, span: Span | None) -> None:
        self._span = span
        self._finish_reasons: list[str] = []
        self._ended = False

    @property
    def span(self) -> Span | None:
        return self._span

    def activated(self) -> contextlib.AbstractContextManager[object]:
        """Current for the ``with`` block: the upstream request sent inside carries its traceparent."""
        if self._span is None:
            return UNTRACED
        from opentelemetry import trace

        return trace.use_span(self._span, record_exception=False, set_status_on_exception=False)

    def observe(self, answer: Completion | StreamEvent) -> None:
        if self._span is None:
            return
        if isinstance(answer, Completion):
            self._finish_reasons.extend(choice.finish_reason for choice in answer.choices)
            record_usage(self._span, answer.usage)
        elif isinstance(answer, Usage):
            record_usage(self._span, answer)
        elif isinstance(answer, Delta) and answer.finish_reason is not None:
            self._finish_reasons.append(answer.finish_reason)

    def end(self, exc: BaseException | None = None) -> None:
        if self._span is None or self._ended:
            return
        self._ended = True
        if exc is not None:
            record_error(self._span, exc)
        if self._finish_reasons:
            record_usage(self._span, None, self._finish_reasons)
        self._span.end()


UNTRACED_ATTEMPT: Final = AttemptTrace(None)


def trace_attempt(deployment: Deployment, request: GenerationInput | None, attempt: int) -> AttemptTrace:
    """Starts the span of one provider attempt (a child of the current span): ``gen_ai.*`` for the
    upstream model, ``llmserve.deployment`` and ``llmserve.attempt`` (1 = the request's first call).
    ``request`` None: an embeddings call. Call ``end()`` exactly when the call is over."""
    tracer = child_tracer()
    if tracer is None:
        return UNTRACED_ATTEMPT
    from opentelemetry.trace import SpanKind

    config = deployment.config
    operation = operation_name(request)
    provider = _GEN_AI_PROVIDERS.get(config.provider, config.provider)
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "gen_ai.request.model": config.model,
        "gen_ai.response.model": config.model,
        "llmserve.deployment": deployment.id,
        "llmserve.model_group": deployment.group,
        "llmserve.attempt": attempt,
    }
    if request is not None:
        add_request_options(attributes, request.options)
    if config.api_base:
        _add_server(attributes, config.api_base)
    started = tracer.start_span(f"{operation} {config.model}", kind=SpanKind.CLIENT, attributes=attributes)
    return AttemptTrace(started)


def _add_server(attributes: MutableMapping[str, AttributeValue], api_base: str) -> None:
    parts = urlsplit(api_base)  # host and port only: never the credentials or query an api_base may hold
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    with contextlib.suppress(ValueError):
        if parts.port is not None:
            attributes["server.port"] = parts.port
