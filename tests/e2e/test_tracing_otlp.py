"""Traces end to end: a live ``llmserve serve`` started with only the standard OTEL_* variables exports
its spans over OTLP/HTTP to a collector on loopback, continues the client's trace, and hands the trace
on to the upstream in ``traceparent``.

The collector is a stand-in that decodes the protobuf posts with ``opentelemetry.proto``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from tests.live_server import LiveServer, running_server, sse_data
from tests.polling import poll
from tests.upstreams.openai_app import openai_server
from tests.upstreams.server import Reply, UpstreamServer

pytestmark = pytest.mark.e2e

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
EXPORT_WAIT_S = 15.0


@dataclass(frozen=True)
class Exported:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


def decode(body: bytes) -> list[Exported]:
    spans: list[Exported] = []
    for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                attributes = {a.key: _value(a.value) for a in s.attributes}
                spans.append(
                    Exported(
                        resource["service.name"],
                        s.name,
                        s.kind,
                        s.trace_id.hex(),
                        s.span_id.hex(),
                        s.parent_span_id.hex(),
                        attributes,
                    )
                )
    return spans


def _value(value: Any) -> Any:
    field = value.WhichOneof("value")
    if field == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, field) if field else None


def collected(collector: UpstreamServer) -> list[Exported]:
    return [span for posted in list(collector.requests) for span in decode(posted.body)]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with openai_server("traced") as server:
        yield server


@pytest.fixture(scope="module")
def collector() -> Iterator[UpstreamServer]:
    with UpstreamServer(lambda _: Reply(200, b"", {"content-type": "application/x-protobuf"})) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    upstream: UpstreamServer, collector: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("tracing")
    config = {
        "models": [
            {
                "name": "gpt",
                "id": "gpt-traced",
                "provider": "openai",
                "api_base": f"{upstream.url}/v1",
                "model": "gpt-test",
            }
        ]
    }
    config_file = directory / "llmserve.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {
        "LLMSERVE_CONFIG": str(config_file),
        # Only the standard variables: no llmserve setting switches tracing on.
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_SERVICE_NAME": "llmserve-e2e",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms between batch exports, so the test need not wait 5 s
    }
    with running_server(directory / "data", extra_env=env) as server:
        yield server


def wait_for_trace(collector: UpstreamServer, trace_id: str, names: set[str]) -> list[Exported]:
    """The spans of ``trace_id`` once all of ``names`` are among them, or those there after the wait."""
    spans: list[Exported] = []

    def arrived() -> bool:
        nonlocal spans
        spans = [s for s in collected(collector) if s.trace_id == trace_id]
        return names <= {s.name for s in spans}

    poll(arrived, within=EXPORT_WAIT_S, interval=0.05)
    return spans


@pytest.mark.parametrize("stream", [False, True])
def test_the_trace_of_a_request_reaches_the_collector_and_the_upstream(
    gateway: LiveServer, upstream: UpstreamServer, collector: UpstreamServer, stream: bool
) -> None:
    client_span = f"{CLIENT_SPAN_ID[:-1]}{int(stream)}"  # one trace per test, same client trace id
    trace_id = f"{CLIENT_TRACE_ID[:-1]}{int(stream)}"
    body = {"model": "gpt", "messages": [{"role": "user", "content": "trace me"}], "stream": stream}
    headers = {"traceparent": f"00-{trace_id}-{client_span}-01"}
    with httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        if stream:
            assert list(sse_data(response.iter_lines()))[-1] == "[DONE]"
        else:
            response.read()
    # The upstream continued our trace: same trace id, parent = the attempt span.
    upstream_trace, upstream_parent = upstream.requests[-1].headers["traceparent"].split("-")[1:3]
    assert upstream_trace == trace_id

    server_name, attempt_name = "HTTP POST /v1/chat/completions", "chat gpt-test"
    spans = wait_for_trace(collector, trace_id, {server_name, attempt_name})
    by_name = {s.name: s for s in spans}
    assert {server_name, attempt_name} <= set(by_name), [s.name for s in spans]
    server, attempt = by_name[server_name], by_name[attempt_name]
    assert {s.service for s in spans} == {"llmserve-e2e"}
    assert server.parent_id == client_span and server.kind == SpanProto.SPAN_KIND_SERVER
    assert server.attributes["http.response.status_code"] == 200
    assert attempt.kind == SpanProto.SPAN_KIND_CLIENT and attempt.span_id == upstream_parent
    assert attempt.attributes["gen_ai.request.model"] == "gpt-test"
    assert attempt.attributes["llmserve.deployment"] == "gpt-traced"
    assert attempt.attributes["gen_ai.usage.output_tokens"] > 0
    ids = {s.span_id for s in spans}
    assert all(s.parent_id in ids for s in spans if s is not server)  # one tree under the server span
    assert not any("trace me" in str(v) for s in spans for v in s.attributes.values())
