"""What the tracing tests share (tests/unit/observability and tests/e2e/observability): a client's
traceparent, tracing switched on with an in-memory exporter (the ``exporter`` and ``handle`` fixtures),
a chat app shaped like ChatService under the tracing middleware, and readers of finished spans."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmserve.api.middleware import JsonBodyMiddleware, RequestIdMiddleware
from llmserve.config import ObservabilitySettings, Settings, TracingSettings
from llmserve.errors import LLMServeError
from llmserve.observability.tracing import (
    TracingHandle,
    current_span,
    record_usage,
    request_attributes,
    setup_tracing,
    span,
)
from llmserve.observability.tracing_middleware import TracingMiddleware
from llmserve.routing.router import Router
from llmserve.routing.telemetry import record_route
from llmserve.types import ChatInput, ChatMessage, Delta, GenerationOptions

CLIENT_TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CLIENT_SPAN_ID = 0x00F067AA0BA902B7
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE_ID:032x}-{CLIENT_SPAN_ID:016x}-01"


def tracing_settings(**tracing: Any) -> Settings:
    return Settings(observability=ObservabilitySettings(tracing=TracingSettings(**tracing)))


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def handle(exporter: InMemorySpanExporter) -> Iterator[TracingHandle]:
    traced = setup_tracing(tracing_settings(enabled=True), span_processor=SimpleSpanProcessor(exporter))
    assert traced is not None
    yield traced
    traced.shutdown()


def chat_app(routed: Router, handle: TracingHandle | None) -> FastAPI:
    """A route shaped like ChatService: admission, cache lookup, then the router; JSON or a stream."""
    app = FastAPI()

    @app.exception_handler(LLMServeError)
    async def domain_error(_: Request, exc: LLMServeError) -> Response:
        return JSONResponse({"error": exc.code}, status_code=exc.status_code)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        options = GenerationOptions(max_tokens=body.get("max_tokens"), temperature=body.get("temperature", 1))
        generation = ChatInput((ChatMessage("user", "secret prompt"),), options)
        with span("llmserve.admission"):
            pass
        with span("llmserve.cache.lookup", **{"llmserve.cache_status": "miss"}):
            pass
        if body.get("stream"):
            with span("llmserve.route", **request_attributes("g", options)):
                events, _ = await routed.stream("g", generation)

            async def chunks() -> AsyncIterator[bytes]:
                async for event in events:
                    if isinstance(event, Delta):
                        yield event.text.encode()
                    else:
                        record_usage(current_span(), event, ["stop"])
                with span("llmserve.store"):
                    pass

            return StreamingResponse(chunks(), media_type="text/plain")
        with span("llmserve.route", **request_attributes("g", options)) as routing:
            completion, info = await routed.complete("g", generation)
            record_usage(routing, completion.usage, [c.finish_reason for c in completion.choices])
            record_route(routing, info, "miss")
        return JSONResponse({"text": completion.choices[0].text})

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict[str, str]:
        return {"id": model_id}

    @app.get("/health")
    async def health() -> dict[str, str]:
        with span("llmserve.health"):
            return {"status": "ok"}

    # As create_app orders them: tracing innermost, under middleware that copies the scope.
    if handle is not None:
        app.add_middleware(TracingMiddleware, handle=handle)
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


def attrs(of: ReadableSpan) -> dict[str, Any]:
    return dict(of.attributes or {})


def parent_id(child: ReadableSpan) -> int | None:
    return None if child.parent is None else child.parent.span_id


def span_id(of: ReadableSpan) -> int:
    assert of.context is not None
    return int(of.context.span_id)


def trace_id(of: ReadableSpan) -> int:
    assert of.context is not None
    return int(of.context.trace_id)
