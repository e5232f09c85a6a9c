"""GET /metrics and MetricsMiddleware as a scraper sees them, on a small app with the same pieces the
real one wires: route templates (never raw URLs) as labels, the model the pipeline names, streams timed
to their last byte, failures counted, the scrape itself not counted, 404 when metrics are off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import StreamingResponse

from llmserve.api.errors import install_error_handlers
from llmserve.api.middleware import JsonBodyMiddleware, RequestIdMiddleware
from llmserve.api.routes import metrics as metrics_route
from llmserve.observability.context import current_model
from llmserve.observability.metrics import Metrics
from llmserve.observability.metrics_middleware import MetricsMiddleware

STREAM_PAUSE_S = 0.3

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]  # (name, labels) -> value


@dataclass(frozen=True)
class FakeServices:
    """The one field of Services the route reads."""

    metrics: Metrics | None


def build_app(metrics: Metrics | None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.services = FakeServices(metrics)
    app.include_router(metrics_route.router)

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict[str, str]:
        current_model.set(model_id)  # as the pipeline does once it has resolved the group
        return {"id": model_id}

    @app.post("/echo")
    async def echo() -> dict[str, str]:
        current_model.set("chat")
        return {"ok": "yes"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            current_model.set("chat")  # set inside the body's own task: still seen
            yield b"data: first\n\n"
            await asyncio.sleep(STREAM_PAUSE_S)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    @app.get("/boom")
    async def boom() -> None:
        current_model.set("chat")
        raise RuntimeError("bug")

    app.add_middleware(JsonBodyMiddleware)  # passes a copy of the scope on for non-JSON bodies
    if metrics is not None:
        app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    return app


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(["chat", "embed"], ["chat#0"])


@pytest.fixture
def client(metrics: Metrics) -> Iterator[TestClient]:
    with TestClient(build_app(metrics), raise_server_exceptions=False) as test_client:
        yield test_client


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def requests_total(samples: Samples) -> dict[tuple[str, ...], float]:
    """(model, status, endpoint) -> count."""
    return {
        (labels["model"], labels["status"], labels["endpoint"]): v
        for (name, items), v in samples.items()
        if name == "llmserve_requests_total" and (labels := dict(items))
    }


def test_requests_are_labelled_by_route_template_status_and_model(client: TestClient) -> None:
    for model_id in ("chat", "chat", "embed", "unknown-1", "unknown-2"):
        assert client.get(f"/v1/models/{model_id}").status_code == 200
    counts = requests_total(scrape(client))
    assert counts == {
        ("chat", "200", "/v1/models/{model_id}"): 2,
        ("embed", "200", "/v1/models/{model_id}"): 1,
        ("other", "200", "/v1/models/{model_id}"): 2,  # a client cannot mint new series
    }


def test_unknown_paths_share_one_series(client: TestClient) -> None:
    for index in range(20):
        assert client.get(f"/no/such/path/{index}").status_code == 404
    assert requests_total(scrape(client)) == {("", "404", "unmatched"): 20}


def test_a_stream_is_timed_to_its_last_byte(client: TestClient) -> None:
    with client.stream("GET", "/stream") as response:
        assert response.status_code == 200
        assert b"".join(response.iter_bytes()).endswith(b"[DONE]\n\n")
    samples = scrape(client)
    assert requests_total(samples) == {("chat", "200", "/stream"): 1}
    latency = samples[("llmserve_request_latency_seconds_sum", frozenset({("model", "chat")}))]
    assert latency >= STREAM_PAUSE_S


def test_a_crash_is_counted_as_500(client: TestClient) -> None:
    assert client.get("/boom").status_code == 500
    assert requests_total(scrape(client)) == {("chat", "500", "/boom"): 1}


def test_a_copied_scope_inside_still_gets_its_route_template(client: TestClient) -> None:
    """curl -d sends a form content type; JsonBodyMiddleware relabels it on a copy of the scope."""
    response = client.post(
        "/echo", content=b"{}", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200
    assert requests_total(scrape(client)) == {("chat", "200", "/echo"): 1}


def test_the_scrape_is_not_counted_and_every_scrape_reads_alike(client: TestClient) -> None:
    client.get("/v1/models/chat")
    first, second = requests_total(scrape(client)), requests_total(scrape(client))
    assert first == second == {("chat", "200", "/v1/models/{model_id}"): 1}


def test_metrics_answer_404_when_turned_off() -> None:
    with TestClient(build_app(None)) as client:
        response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "metrics_disabled"
