"""Traces as the outside sees them: the upstream gets the attempt span as its traceparent (and nothing
when tracing is off), an unsampled request still propagates, and spans reach a real OTLP/HTTP collector.
The upstream and the collector are real HTTP servers on loopback (tests/upstreams)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llmserve.config import ModelDeployment, RouterSettings
from llmserve.observability.tracing import (
    TracingHandle,
    current_span,
    inject_trace_context,
    request_attributes,
    setup_tracing,
    span,
)
from llmserve.providers.base import Provider
from llmserve.providers.http import UpstreamHTTP
from llmserve.providers.openai_compat import OpenAIProvider
from llmserve.routing.deployment import Deployment
from llmserve.routing.router import Router
from llmserve.types import GenerationOptions
from tests.fixtures_tracing import (
    CLIENT_TRACE_ID,
    CLIENT_TRACEPARENT,
    attrs,
    chat_app,
    client_for,
    span_id,
    tracing_settings,
)
from tests.upstreams.openai_app import openai_server
from tests.upstreams.server import Reply, UpstreamRequest, UpstreamServer

pytestmark = pytest.mark.e2e


@pytest.fixture
async def http() -> AsyncIterator[UpstreamHTTP]:
    client = UpstreamHTTP()
    yield client
    await client.aclose()


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    with openai_server("a") as server:
        yield server


def upstream_router(server: UpstreamServer, http: UpstreamHTTP) -> Router:
    config = ModelDeployment(name="g", provider="openai", model="gpt-test", api_base=f"{server.url}/v1")
    provider: Provider = OpenAIProvider(config, http, deployment_id="gpt-a")
    return Router({"g": [Deployment("gpt-a", "g", config, provider)]}, RouterSettings())


def traceparent_of(request: UpstreamRequest) -> tuple[int, int]:
    version, trace, parent, flags = request.headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    return int(trace, 16), int(parent, 16)


# -- the upstream sees our trace ----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_the_upstream_request_carries_the_attempt_span_as_traceparent(
    handle: TracingHandle,
    exporter: InMemorySpanExporter,
    upstream: UpstreamServer,
    http: UpstreamHTTP,
    stream: bool,
) -> None:
    app = chat_app(upstream_router(upstream, http), handle)
    async with client_for(app) as client:
        response = await client.post(
            "/v1/chat/completions", json={"stream": stream}, headers={"traceparent": CLIENT_TRACEPARENT}
        )
    assert response.status_code == 200 and "[a] echo: secret prompt" in response.text
    (attempt,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert traceparent_of(upstream.requests[-1]) == (CLIENT_TRACE_ID, span_id(attempt))
    attributes = attrs(attempt)
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", upstream.port)
    assert (attributes["gen_ai.provider.name"], attributes["gen_ai.request.model"]) == ("openai", "gpt-test")
    assert all(
        "secret prompt" not in str(value)
        for s in exporter.get_finished_spans()
        for value in attrs(s).values()
    )


async def test_with_tracing_off_nothing_is_recorded_or_sent(
    upstream: UpstreamServer, http: UpstreamHTTP
) -> None:
    assert setup_tracing(tracing_settings(), environ={}) is None
    app = chat_app(upstream_router(upstream, http), None)
    async with client_for(app) as client:
        response = await client.post(
            "/v1/chat/completions", json={}, headers={"traceparent": CLIENT_TRACEPARENT}
        )
    assert response.status_code == 200
    assert "traceparent" not in upstream.requests[-1].headers  # nor is the client's passed through
    with span("anything", **request_attributes("g", GenerationOptions())) as nothing:
        assert nothing is None and current_span() is None
    assert request_attributes("g") == {}
    assert inject_trace_context({"a": "b"}) == {"a": "b"}


async def test_unsampled_requests_propagate_but_record_nothing(
    exporter: InMemorySpanExporter, upstream: UpstreamServer, http: UpstreamHTTP
) -> None:
    unsampled = setup_tracing(
        tracing_settings(enabled=True, sample_ratio=0), span_processor=SimpleSpanProcessor(exporter)
    )
    assert unsampled is not None
    try:
        async with client_for(chat_app(upstream_router(upstream, http), unsampled)) as client:
            assert (await client.post("/v1/chat/completions", json={})).status_code == 200
    finally:
        unsampled.shutdown()
    assert exporter.get_finished_spans() == ()
    flags = int(upstream.requests[-1].headers["traceparent"].rsplit("-", 1)[1], 16)
    assert flags & 1 == 0  # "not sampled" travels on, so the upstream does not sample either


# -- exporting --------------------------------------------------------------------------------------


def otlp_receiver() -> UpstreamServer:
    """A collector stand-in: takes OTLP/HTTP protobuf posts and answers 200."""
    return UpstreamServer(lambda _: Reply(200, b"", {"content-type": "application/x-protobuf"}))


def exported_spans(receiver: UpstreamServer) -> list[tuple[str, str]]:
    """(service.name, span name) of every span the receiver got."""
    found: list[tuple[str, str]] = []
    for posted in receiver.requests:
        assert (posted.method, posted.path) == ("POST", "/v1/traces")
        assert posted.headers["content-type"] == "application/x-protobuf"
        decoded = ExportTraceServiceRequest.FromString(posted.body)
        for resource_spans in decoded.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                found += [(resource["service.name"], s.name) for s in scope_spans.spans]
    return found


async def test_spans_reach_an_otlp_collector_at_the_configured_endpoint() -> None:
    with otlp_receiver() as receiver:
        traced = setup_tracing(
            tracing_settings(),
            environ={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "gw"},
        )
        assert traced is not None and traced.exporters == ("otlp",)
        with traced.activate(), span("llmserve.route"):
            await asyncio.sleep(0)
        await traced.aclose()  # flushes the batch: what the app's shutdown does
        assert exported_spans(receiver) == [("gw", "llmserve.route")]
