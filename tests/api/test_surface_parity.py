"""Every surface that shares the pipeline answers the same question the same way.

One greedy question through the OpenAI chat body (JSON and SSE), the seed prompt/history body on the
same endpoint, the seed-native /chat/new/message/, /chat/stream (POST pieces, POST whole text, GET for
EventSource) and the WebSocket: the same text, the same token counts booked once per request, and the
llmserve headers on every HTTP answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import sse_events, user

QUESTION = "What is 2 plus 3?"
SAMPLING = {"temperature": 0, "max_tokens": 24}


ANTHROPIC_BODY = {"model": "tiny-chat", "messages": [{"role": "user", "content": QUESTION}], **SAMPLING}


def tokens_booked(client: TestClient) -> dict[str, float]:
    """llmserve_tokens_total by type, summed over models: what the settle step booked."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "llmserve_tokens":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    kind = sample.labels["type"]
                    totals[kind] = totals.get(kind, 0.0) + sample.value
    return totals


def openai_json(client: TestClient) -> str:
    response = client.post("/v1/chat/completions", json={"messages": [user(QUESTION)], **SAMPLING})
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def openai_stream(client: TestClient) -> str:
    response = client.post(
        "/v1/chat/completions", json={"messages": [user(QUESTION)], "stream": True, **SAMPLING}
    )
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    return "".join(
        choice["delta"].get("content") or ""
        for event in events[:-1]
        for choice in json.loads(event)["choices"]
    )


def openai_seed_shape(client: TestClient) -> str:
    response = client.post("/v1/chat/completions", json={"prompt": QUESTION, **SAMPLING})
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def seed_new_message(client: TestClient) -> str:
    response = client.post("/chat/new/message/", json={"prompt": QUESTION, **SAMPLING})
    assert response.status_code == 200, response.text
    return str(response.json()["response"])


def _seed_sse_text(body: str) -> str:
    events = sse_events(body)
    assert events[-1] == "[DONE]"
    return "".join(json.loads(event)["text"] for event in events[:-1])


def seed_stream_pieces(client: TestClient) -> str:
    response = client.post("/chat/stream", json={"prompt": QUESTION, "stream": True, **SAMPLING})
    assert response.status_code == 200, response.text
    return _seed_sse_text(response.text)


def seed_stream_whole(client: TestClient) -> str:
    response = client.post("/chat/stream", json={"prompt": QUESTION, "stream": False, **SAMPLING})
    assert response.status_code == 200, response.text
    assert len(sse_events(response.text)) == 2  # one whole-text event, then [DONE]
    return _seed_sse_text(response.text)


def seed_stream_get(client: TestClient) -> str:
    response = client.get("/chat/stream", params={"prompt": QUESTION, **SAMPLING})
    assert response.status_code == 200, response.text
    return _seed_sse_text(response.text)


def seed_websocket(client: TestClient) -> str:
    with client.websocket_connect("/chat/ws") as ws:
        ws.send_text(json.dumps({"prompt": QUESTION, **SAMPLING}))
        chunks: list[str] = []
        while (message := ws.receive_json())["type"] == "chunk":
            chunks.append(message["content"])
    assert message["type"] == "complete", message
    assert message["full_response"] == "".join(chunks)
    return str(message["full_response"])


RESPONSES_SAMPLING = {"temperature": 0, "max_output_tokens": 24}


def typed_events(body: str) -> list[dict[str, Any]]:
    """The Responses API's events: ``event: <type>`` then ``data: {"type": <type>, ...}``."""
    assert body.endswith("\n\n")
    events = []
    for block in filter(None, body.split("\n\n")):
        name, data = block.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}", block
        events.append(payload)
    return events


def responses_json(client: TestClient) -> str:
    response = client.post("/v1/responses", json={"input": QUESTION, **RESPONSES_SAMPLING})
    assert response.status_code == 200, response.text
    (message,) = response.json()["output"]
    return str(message["content"][0]["text"])


def responses_stream(client: TestClient) -> str:
    response = client.post("/v1/responses", json={"input": QUESTION, "stream": True, **RESPONSES_SAMPLING})
    assert response.status_code == 200, response.text
    events = typed_events(response.text)
    assert events[-1]["type"] == "response.completed"
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    text = "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == text
    return text


def anthropic_message(client: TestClient) -> str:
    response = client.post("/v1/messages", json=ANTHROPIC_BODY)
    assert response.status_code == 200, response.text
    return "".join(block["text"] for block in response.json()["content"])


def anthropic_stream(client: TestClient) -> str:
    response = client.post("/v1/messages", json={**ANTHROPIC_BODY, "stream": True})
    assert response.status_code == 200, response.text
    data = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    return "".join(event["delta"]["text"] for event in data if event["type"] == "content_block_delta")


SURFACES: dict[str, Callable[[TestClient], str]] = {
    "responses json": responses_json,
    "responses stream": responses_stream,
    "anthropic message": anthropic_message,
    "anthropic stream": anthropic_stream,
    "openai json": openai_json,
    "openai stream": openai_stream,
    "openai seed shape": openai_seed_shape,
    "seed new message": seed_new_message,
    "seed stream pieces": seed_stream_pieces,
    "seed stream whole": seed_stream_whole,
    "seed stream GET": seed_stream_get,
    "seed websocket": seed_websocket,
}


@pytest.fixture(scope="module")
def reference(client: TestClient) -> tuple[str, dict[str, float]]:
    """The OpenAI JSON answer, and the tokens one such request books."""
    before = tokens_booked(client)
    text = openai_json(client)
    after = tokens_booked(client)
    booked = {kind: after.get(kind, 0.0) - before.get(kind, 0.0) for kind in after}
    assert text and booked.get("input", 0) > 0 and booked.get("output", 0) > 0
    return text, booked


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_every_surface_gives_the_same_answer_and_books_it_once(
    client: TestClient, reference: tuple[str, dict[str, float]], surface: str
) -> None:
    text, booked_by_one = reference
    before = tokens_booked(client)
    assert SURFACES[surface](client) == text
    after = tokens_booked(client)
    assert {kind: after[kind] - before.get(kind, 0.0) for kind in after} == booked_by_one


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/chat/completions", {"messages": [user(QUESTION)], **SAMPLING}),
        ("POST", "/v1/chat/completions", {"messages": [user(QUESTION)], "stream": True, **SAMPLING}),
        ("POST", "/chat/new/message/", {"prompt": QUESTION, **SAMPLING}),
        ("POST", "/chat/stream", {"prompt": QUESTION, **SAMPLING}),
        ("POST", "/chat", {"message": QUESTION}),
        ("POST", "/chat", {"message": QUESTION, "stream": True}),
        ("POST", "/v1/responses", {"input": QUESTION, **RESPONSES_SAMPLING}),
        ("POST", "/v1/responses", {"input": QUESTION, "stream": True, **RESPONSES_SAMPLING}),
        ("POST", "/v1/messages", ANTHROPIC_BODY),
        ("POST", "/v1/messages", {**ANTHROPIC_BODY, "stream": True}),
    ],
)
def test_every_http_surface_says_who_answered(
    client: TestClient, method: str, path: str, body: object
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 200, response.text
    for header in (
        "x-llmserve-deployment",
        "x-llmserve-attempts",
        "x-llmserve-overhead-ms",
        "x-llmserve-cache",
    ):
        assert header in response.headers, (path, header)
    assert response.headers["x-llmserve-cache"] == "miss"
