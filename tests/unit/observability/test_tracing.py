"""Traces: a server span per request with the pipeline's spans and one CLIENT span per provider attempt
under it, a client's traceparent continued, and how tracing is switched on.

The spans land in the SDK's ``InMemorySpanExporter`` (the ``exporter`` and ``handle`` fixtures of
``tests.fixtures_tracing``); providers are hand-written fakes. What a real upstream and a real OTLP
collector receive is in tests/e2e/observability/test_tracing.py.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llmserve.config import RouterSettings, TracingSettings
from llmserve.observability.tracing import TracingHandle, otlp_endpoint, setup_tracing, span
from llmserve.routing.router import Router
from llmserve.types import ChatInput, ChatMessage, GenerationInput, TextInput
from tests.fixtures_tracing import (
    CLIENT_SPAN_ID,
    CLIENT_TRACE_ID,
    CLIENT_TRACEPARENT,
    attrs,
    chat_app,
    client_for,
    parent_id,
    span_id,
    trace_id,
    tracing_settings,
)
from tests.unit.routing.fakes import FakeClock, FakeProvider, deployment, router, upstream_error


def fake_router(*providers: FakeProvider, **settings: Any) -> Router:
    clock = FakeClock()
    return router({"g": [deployment(p, clock, model=f"up-{p.name}") for p in providers]}, clock, **settings)


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    named = {s.name: s for s in spans}
    assert len(named) == len(spans), [s.name for s in spans]
    return named


# -- the request's trace ------------------------------------------------------------------------


async def test_a_request_is_one_trace_server_span_over_pipeline_spans_over_attempts(
    handle: TracingHandle, exporter: InMemorySpanExporter
) -> None:
    app = chat_app(fake_router(FakeProvider("a")), handle)
    async with client_for(app) as client:
        response = await client.post(
            "/v1/chat/completions", json={"max_tokens": 7, "temperature": 0.5}, headers={"x-request-id": "r1"}
        )
    assert response.status_code == 200
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {
        "HTTP POST /v1/chat/completions",
        "llmserve.admission",
        "llmserve.cache.lookup",
        "llmserve.route",
        "chat up-a",
    }
    server, routing, attempt = (
        spans["HTTP POST /v1/chat/completions"],
        spans["llmserve.route"],
        spans["chat up-a"],
    )
    assert server.kind is SpanKind.SERVER and server.parent is None
    assert attrs(server) == {
        "http.request.method": "POST",
        "url.path": "/v1/chat/completions",
        "url.scheme": "http",
        "http.route": "/v1/chat/completions",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
        "llmserve.request_id": "r1",
    }
    assert len({trace_id(s) for s in spans.values()}) == 1
    for step in ("llmserve.admission", "llmserve.cache.lookup", "llmserve.route"):
        assert parent_id(spans[step]) == span_id(server)
    assert spans["llmserve.cache.lookup"].attributes == {"llmserve.cache_status": "miss"}
    assert attrs(routing) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "g",
        "gen_ai.request.max_tokens": 7,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.output_tokens": 2,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.response.model": "g",
        "llmserve.model_group": "g",
        "llmserve.deployment": "a",
        "llmserve.attempts": 1,
        "llmserve.fallback_used": False,
        "llmserve.cache_status": "miss",
    }
    assert attempt.kind is SpanKind.CLIENT and parent_id(attempt) == span_id(routing)
    assert attrs(attempt) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "llmserve",
        "gen_ai.system": "llmserve",
        "gen_ai.request.model": "up-a",
        "gen_ai.response.model": "up-a",
        "gen_ai.request.max_tokens": 7,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 1.0,
        "llmserve.deployment": "a",
        "llmserve.model_group": "g",
        "llmserve.attempt": 1,
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.output_tokens": 2,
        "gen_ai.response.finish_reasons": ("stop",),
    }
    assert all(s.status.status_code is StatusCode.UNSET for s in spans.values())


async def test_a_client_traceparent_becomes_the_parent(
    handle: TracingHandle, exporter: InMemorySpanExporter
) -> None:
    app = chat_app(fake_router(FakeProvider("a")), handle)
    async with client_for(app) as client:
        await client.post("/v1/chat/completions", json={}, headers={"traceparent": CLIENT_TRACEPARENT})
    spans = by_name(exporter.get_finished_spans())
    server = spans["HTTP POST /v1/chat/completions"]
    assert parent_id(server) == CLIENT_SPAN_ID
    assert server.parent is not None and server.parent.is_remote
    assert {trace_id(s) for s in spans.values()} == {CLIENT_TRACE_ID}


async def test_a_malformed_traceparent_starts_a_new_trace(
    handle: TracingHandle, exporter: InMemorySpanExporter
) -> None:
    app = chat_app(fake_router(FakeProvider("a")), handle)
    async with client_for(app) as client:
        response = await client.post("/v1/chat/completions", json={}, headers={"traceparent": "00-zz-1-01"})
    assert response.status_code == 200
    server = by_name(exporter.get_finished_spans())["HTTP POST /v1/chat/completions"]
    assert server.parent is None and trace_id(server) != 0


async def test_a_failed_attempt_is_an_error_span_by_type_and_the_retry_its_sibling(
    handle: TracingHandle, exporter: InMemorySpanExporter
) -> None:
    app = chat_app(fake_router(FakeProvider("a", script=[upstream_error(503)]), retries=1), handle)
    async with client_for(app) as client:
        response = await client.post("/v1/chat/completions", json={})
    assert response.status_code == 200
    attempts = sorted(
        (s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT),
        key=lambda s: attrs(s)["llmserve.attempt"],
    )
    assert [attrs(s)["llmserve.attempt"] for s in attempts] == [1, 2]
    failed, answered = attempts
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "UpstreamError"  # the type, never the message
    assert attrs(failed)["error.type"] == "UpstreamError"
    assert attrs(failed)["http.response.status_code"] == 503
    assert attrs(failed)["llmserve.upstream.error_kind"] == "status"
    assert not failed.events  # no exception event: its message could quote the prompt
    assert answered.status.status_code is StatusCode.UNSET
    assert parent_id(failed) == parent_id(answered)


async def test_a_5xx_answer_marks_the_server_span_failed_but_a_4xx_does_not(
    handle: TracingHandle, exporter: InMemorySpanExporter
) -> None:
    down = FakeProvider("a", default=upstream_error(503))
    app = chat_app(fake_router(down, retries=0), handle)
    async with client_for(app) as client:
        failed = await client.post("/v1/chat/completions", json={})
        missing = await client.get("/v1/nowhere")
    assert (failed.status_code, missing.status_code) == (502, 404)
    spans = exporter.get_finished_spans()
    server = by_name([s for s in spans if s.kind is SpanKind.SERVER])
    assert server["HTTP POST /v1/chat/completions"].status.status_code is StatusCode.ERROR
    assert server["HTTP GET"].status.status_code is StatusCode.UNSET  # no route matched: no template
    assert attrs(server["HTTP GET"])["http.response.status_code"] == 404
    routing = next(s for s in spans if s.name == "llmserve.route")
    assert attrs(routing)["error.type"] == "UpstreamError"


async def test_a_stream_keeps_its_spans_open_until_its_last_event(
    handle: TracingHandle, exporter: InMemorySpanExporter
) -> None:
    app = chat_app(fake_router(FakeProvider("a", gap=0.01)), handle)
    async with client_for(app) as client:
        response = await client.post("/v1/chat/completions", json={"stream": True})
    assert response.text == "a!"
    spans = by_name(exporter.get_finished_spans())
    server, attempt, store = (
        spans["HTTP POST /v1/chat/completions"],
        spans["chat up-a"],
        spans["llmserve.store"],
    )
    assert parent_id(attempt) == span_id(spans["llmserve.route"])
    assert parent_id(store) == span_id(server)  # after the router returned, still in the request's trace
    assert attempt.start_time is not None and attempt.end_time is not None
    assert server.end_time is not None and store.end_time is not None
    assert attempt.end_time <= store.end_time <= server.end_time
    assert attempt.end_time - attempt.start_time >= 15_000_000  # the whole stream (2 gaps of 10 ms), ns
    assert attrs(attempt)["gen_ai.usage.output_tokens"] == 2
    assert attrs(attempt)["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs(server)["gen_ai.usage.input_tokens"] == 3  # record_usage(current_span())


async def test_the_losing_hedge_is_a_cancelled_attempt_not_an_error(
    handle: TracingHandle, exporter: InMemorySpanExporter
) -> None:
    clock = FakeClock()
    slow, fast = FakeProvider("slow", delay=0.5), FakeProvider("fast")
    ds = [deployment(slow, clock, weight=1000, model="m"), deployment(fast, clock, weight=0.001, model="m")]
    hedging = Router({"g": ds}, RouterSettings(hedge_after_ms=10), rng=random.Random(11))
    with handle.activate(), span("request"):
        completion, info = await hedging.complete("g", ChatInput((ChatMessage("user", "hi"),)))
    assert (completion.choices[0].text, info.attempts) == ("fast", 2)
    attempts = {attrs(s)["llmserve.deployment"]: s for s in exporter.get_finished_spans()[:-1]}
    assert attrs(attempts["slow"])["llmserve.cancelled"] is True
    assert attempts["slow"].status.status_code is StatusCode.UNSET
    assert attrs(attempts["fast"])["llmserve.attempt"] == 2


@pytest.mark.parametrize(
    ("request_input", "name"),
    [
        (ChatInput((ChatMessage("user", "hi"),)), "chat up-a"),
        (TextInput("hi"), "text_completion up-a"),
    ],
)
async def test_attempt_spans_name_the_operation_and_the_upstream_model(
    handle: TracingHandle, exporter: InMemorySpanExporter, request_input: GenerationInput, name: str
) -> None:
    with handle.activate():
        await fake_router(FakeProvider("a")).complete("g", request_input)
    (attempt,) = exporter.get_finished_spans()
    assert attempt.name == name
    assert attrs(attempt)["gen_ai.operation.name"] == name.split()[0]


async def test_two_apps_never_share_spans(exporter: InMemorySpanExporter, handle: TracingHandle) -> None:
    other_exporter = InMemorySpanExporter()
    other = setup_tracing(tracing_settings(enabled=True), span_processor=SimpleSpanProcessor(other_exporter))
    assert other is not None
    try:
        async with client_for(chat_app(fake_router(FakeProvider("a")), other)) as client:
            await client.post("/v1/chat/completions", json={})
        with span("outside any request"):
            pass
    finally:
        other.shutdown()
    assert exporter.get_finished_spans() == ()
    assert len(other_exporter.get_finished_spans()) == 5


async def test_server_spans_are_named_by_route_template_not_by_path(
    handle: TracingHandle, exporter: InMemorySpanExporter
) -> None:
    async with client_for(chat_app(fake_router(FakeProvider("a")), handle)) as client:
        for model_id in ("gpt-a", "gpt-b"):
            assert (await client.get(f"/v1/models/{model_id}")).status_code == 200
    names = [(s.name, attrs(s)["url.path"]) for s in exporter.get_finished_spans()]
    assert names == [
        ("HTTP GET /v1/models/{model_id}", "/v1/models/gpt-a"),
        ("HTTP GET /v1/models/{model_id}", "/v1/models/gpt-b"),
    ]


async def test_probes_are_not_traced(handle: TracingHandle, exporter: InMemorySpanExporter) -> None:
    async with client_for(chat_app(fake_router(FakeProvider("a")), handle)) as client:
        assert (await client.get("/health")).status_code == 200
    assert exporter.get_finished_spans() == ()


# -- switching it on --------------------------------------------------------------------------------


def test_off_unless_configured_or_an_otel_variable_asks_for_it() -> None:
    assert setup_tracing(tracing_settings(), environ={}) is None
    assert setup_tracing(tracing_settings(), environ={"OTEL_SERVICE_NAME": "x"}) is None
    assert setup_tracing(tracing_settings(), environ={"OTEL_TRACES_EXPORTER": "none"}) is None
    asked = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert setup_tracing(tracing_settings(enabled=False), environ=asked) is None
    assert setup_tracing(tracing_settings(), environ={**asked, "OTEL_SDK_DISABLED": "true"}) is None


@pytest.mark.parametrize(
    ("tracing", "environ", "exporters"),
    [
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({}, {"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
        ({}, {"OTEL_TRACES_EXPORTER": "otlp, console,zipkin"}, ("otlp", "console")),
        ({"exporter": "console"}, {"OTEL_TRACES_EXPORTER": "otlp"}, ("console",)),  # config wins
        ({"enabled": True, "exporter": "none"}, {}, ()),  # spans only for propagation
        ({"endpoint": "http://collector:4318"}, {}, ("otlp",)),
    ],
)
def test_exporters_come_from_config_then_otel_variables(
    tracing: dict[str, Any], environ: dict[str, str], exporters: tuple[str, ...]
) -> None:
    traced = setup_tracing(tracing_settings(**tracing), environ=environ)
    assert traced is not None
    try:
        assert traced.exporters == exporters
    finally:
        traced.shutdown()


@pytest.mark.parametrize(
    ("tracing", "environ", "name"),
    [
        ({}, {}, "llmserve"),
        ({}, {"OTEL_SERVICE_NAME": "gateway-eu"}, "gateway-eu"),
        ({}, {"OTEL_RESOURCE_ATTRIBUTES": "team=ml,service.name=gw"}, "gw"),
        ({"service_name": "from-config"}, {"OTEL_SERVICE_NAME": "gateway-eu"}, "from-config"),
    ],
)
def test_the_service_name_comes_from_config_then_otel_variables(
    tracing: dict[str, Any], environ: dict[str, str], name: str
) -> None:
    traced = setup_tracing(tracing_settings(enabled=True, exporter="none", **tracing), environ=environ)
    assert traced is not None
    assert traced.provider.resource.attributes["service.name"] == name
    traced.shutdown()


@pytest.mark.parametrize(
    ("tracing", "environ", "sampled"),
    [
        ({}, {}, True),
        ({"sample_ratio": 0.0}, {}, False),
        ({}, {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, False),
        ({"sample_ratio": 1.0}, {"OTEL_TRACES_SAMPLER": "always_off"}, True),  # config wins
    ],
)
def test_the_sample_ratio_comes_from_config_then_otel_variables(
    tracing: dict[str, Any], environ: dict[str, str], sampled: bool
) -> None:
    exporter = InMemorySpanExporter()
    traced = setup_tracing(
        tracing_settings(enabled=True, **tracing),
        environ=environ,
        span_processor=SimpleSpanProcessor(exporter),
    )
    assert traced is not None
    with traced.activate(), span("one"):
        pass
    traced.shutdown()
    assert len(exporter.get_finished_spans()) == (1 if sampled else 0)


@pytest.mark.parametrize(
    ("tracing", "environ", "url"),
    [
        (
            {"endpoint": "http://c:4318"},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"},
            "http://c:4318/v1/traces",
        ),
        ({"endpoint": "http://c:4318/v1/traces"}, {}, "http://c:4318/v1/traces"),
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318/"}, "http://env:4318/v1/traces"),
        ({}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:9/custom"}, "http://env:9/custom"),
        ({}, {}, None),
    ],
)
def test_the_otlp_endpoint_follows_the_otel_rules(
    tracing: dict[str, Any], environ: dict[str, str], url: str | None
) -> None:
    assert otlp_endpoint(TracingSettings(**tracing), environ) == url
