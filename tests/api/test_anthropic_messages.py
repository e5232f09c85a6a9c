"""POST /v1/messages and /v1/messages/count_tokens on the bundled model, through the real app.

The Messages surface shares the pipeline: the same greedy question answers with the same text and
books the same tokens as Chat Completions, once; its errors are Anthropic's; keys come as
``x-api-key`` or ``Authorization``; the requests are counted under their own endpoint label.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import Message
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.api.test_surface_parity import QUESTION, SAMPLING, openai_json, tokens_booked

MESSAGES = "/v1/messages"
BODY: dict[str, Any] = {"model": "tiny-chat", "messages": [{"role": "user", "content": QUESTION}], **SAMPLING}
MASTER = "master-key-for-anthropic-tests-0123456789"


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each Anthropic SSE event; asserts the name repeats the data's type."""
    out = []
    for block in body.split("\n\n"):
        if block:
            head, data = block.split("\n")
            payload = orjson.loads(data.removeprefix("data: "))
            assert head == f"event: {payload['type']}"
            out.append((payload["type"], payload))
    return out


def streamed_text(client: TestClient, body: dict[str, Any]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    response = client.post(MESSAGES, json={**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    parsed = events(response.text)
    text = "".join(p["delta"]["text"] for kind, p in parsed if kind == "content_block_delta")
    return text, parsed


def booked_by(client: TestClient, call: Any) -> dict[str, float]:
    before = tokens_booked(client)
    call()
    after = tokens_booked(client)
    return {kind: after[kind] - before.get(kind, 0.0) for kind in after}


def test_a_message_answers_what_chat_completions_answers_and_books_it_once(client: TestClient) -> None:
    expected = openai_json(client)
    booked_by_chat = booked_by(client, lambda: openai_json(client))
    replies: list[Any] = []
    booked = booked_by(client, lambda: replies.append(client.post(MESSAGES, json=BODY)))
    response = replies[0]
    assert response.status_code == 200, response.text
    message = Message.model_validate(response.json())
    assert message.content[0].text == expected  # type: ignore[union-attr]
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert booked == booked_by_chat
    assert message.usage.input_tokens == booked["input"] and message.usage.output_tokens == booked["output"]
    for header in (
        "x-llmserve-deployment",
        "x-llmserve-attempts",
        "x-llmserve-overhead-ms",
        "x-llmserve-cache",
    ):
        assert header in response.headers


def test_a_stream_says_the_same_with_real_usage_at_both_ends(client: TestClient) -> None:
    expected = openai_json(client)
    result: list[Any] = []
    booked = booked_by(client, lambda: result.append(streamed_text(client, BODY)))
    text, parsed = result[0]
    assert text == expected
    kinds = [kind for kind, _ in parsed]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start, delta = parsed[0][1]["message"]["usage"], parsed[-2][1]["usage"]
    assert start["input_tokens"] == delta["input_tokens"] == booked["input"]
    assert delta["output_tokens"] == booked["output"]


def test_count_tokens_counts_what_the_message_is_billed(client: TestClient) -> None:
    counted = client.post(
        f"{MESSAGES}/count_tokens", json={"model": "tiny-chat", "messages": BODY["messages"]}
    )
    assert counted.status_code == 200, counted.text
    answered = client.post(MESSAGES, json=BODY).json()
    assert counted.json() == {"input_tokens": answered["usage"]["input_tokens"]}


def test_system_as_blocks_and_beta_query_are_taken(client: TestClient) -> None:
    system = [{"type": "text", "text": "You are terse."}]
    as_blocks = client.post(f"{MESSAGES}?beta=true", json={**BODY, "system": system})
    as_text = client.post(MESSAGES, json={**BODY, "system": "You are terse."})
    assert as_blocks.status_code == as_text.status_code == 200, as_blocks.text
    assert as_blocks.json()["content"] == as_text.json()["content"]
    assert as_blocks.json()["usage"] == as_text.json()["usage"]


def _error(response: Any, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    assert set(body["error"]) == {"type", "message"}
    return str(body["error"]["message"])


@pytest.mark.parametrize(
    ("change", "status", "kind", "words"),
    [
        ({"max_tokens": None}, 400, "invalid_request_error", "max_tokens"),
        ({"model": "claude-nope"}, 404, "not_found_error", "claude-nope"),
        ({"temperature": 1.5}, 400, "invalid_request_error", "temperature"),
        (
            {"tools": [{"name": "f", "input_schema": {"type": "object"}}]},
            400,
            "invalid_request_error",
            "tools",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "x"}}]}
                ]
            },
            400,
            "invalid_request_error",
            "messages.0.content.0",
        ),
    ],
)
def test_refusals_are_anthropic_errors(
    client: TestClient, change: dict[str, Any], status: int, kind: str, words: str
) -> None:
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    assert words in _error(client.post(MESSAGES, json=body), status, kind)
    if "max_tokens" in body:
        streamed = client.post(MESSAGES, json={**body, "stream": True})
        assert words in _error(streamed, status, kind)


def test_a_body_that_is_not_json_is_an_anthropic_400(client: TestClient) -> None:
    _error(client.post(MESSAGES, content=b"{nope"), 400, "invalid_request_error")
    _error(client.post(f"{MESSAGES}/count_tokens", content=b"[]"), 400, "invalid_request_error")


def test_a_body_over_the_size_limit_is_an_anthropic_413(client: TestClient) -> None:
    huge = {**BODY, "messages": [{"role": "user", "content": "x" * 70_000}]}  # the app allows 64 KiB
    _error(client.post(MESSAGES, json=huge), 413, "request_too_large")


def test_a_prompt_over_the_context_is_an_anthropic_400(client: TestClient) -> None:
    long = {**BODY, "messages": [{"role": "user", "content": "word " * 9000}], "max_tokens": 16}
    _error(client.post(MESSAGES, json=long), 400, "invalid_request_error")


def test_head_and_get_of_the_base_url_answer(client: TestClient) -> None:
    assert client.head("/").status_code == 200
    assert client.get("/").json()["name"] == "llmserve"


def test_requests_are_counted_under_their_own_endpoint(client: TestClient) -> None:
    client.post(MESSAGES, json=BODY)
    client.post(f"{MESSAGES}/count_tokens", json={"model": "tiny-chat", "messages": BODY["messages"]})
    endpoints = {
        sample.labels["endpoint"]
        for family in text_string_to_metric_families(client.get("/metrics").text)
        if family.name == "llmserve_requests"
        for sample in family.samples
    }
    assert {MESSAGES, f"{MESSAGES}/count_tokens"} <= endpoints


def test_the_openapi_document_lists_anthropic_errors_and_the_event_stream(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    responses = document["paths"][MESSAGES]["post"]["responses"]
    assert responses["529"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "AnthropicErrorResponse"
    )
    assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "AnthropicErrorResponse"
    )
    assert "text/event-stream" in responses["200"]["content"]
    count = document["paths"][f"{MESSAGES}/count_tokens"]["post"]["responses"]["200"]["content"]
    assert list(count) == ["application/json"]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("anthropic-auth")
    with TestClient(create_app(load_settings(data_dir=str(data_dir), master_key=MASTER))) as test_client:
        yield test_client


@pytest.mark.parametrize("headers", [{"x-api-key": MASTER}, {"authorization": f"Bearer {MASTER}"}])
def test_a_key_is_taken_from_x_api_key_or_authorization(secured: TestClient, headers: dict[str, str]) -> None:
    headers = {**headers, "anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-04-04"}
    assert secured.post(MESSAGES, json=BODY, headers=headers).status_code == 200
    counted = secured.post(
        f"{MESSAGES}/count_tokens", json={"model": "tiny-chat", "messages": BODY["messages"]}, headers=headers
    )
    assert counted.status_code == 200


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "sk-ant-wrong"}])
def test_without_a_valid_key_it_is_an_anthropic_401(secured: TestClient, headers: dict[str, str]) -> None:
    _error(secured.post(MESSAGES, json=BODY, headers=headers), 401, "authentication_error")


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A group served by an Anthropic deployment nothing listens for."""
    data_dir: Path = tmp_path_factory.mktemp("anthropic-unreachable")
    claude = {
        "name": "claude",
        "provider": "anthropic",
        "model": "claude-x",
        "api_base": "http://127.0.0.1:9",
    }
    settings = load_settings(data_dir=str(data_dir), models=[claude], router={"retries": 0})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_count_tokens_estimates_when_the_anthropic_upstream_cannot_count(unreachable: TestClient) -> None:
    body = {"model": "claude", "messages": [{"role": "user", "content": "one two three four"}]}
    counted = unreachable.post(f"{MESSAGES}/count_tokens", json=body)
    assert counted.status_code == 200, counted.text
    assert counted.json()["input_tokens"] > 0


def test_an_upstream_that_cannot_be_reached_is_an_anthropic_server_error(unreachable: TestClient) -> None:
    body = {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        response = unreachable.post(MESSAGES, json={**body, "stream": stream})
        assert response.status_code in (500, 529), response.text
        assert response.json()["type"] == "error"
        assert response.json()["error"]["type"] in ("api_error", "overloaded_error")


def test_a_conversation_id_keeps_the_history_server_side_as_on_chat(client: TestClient) -> None:
    conversation = "anthropic-history-1"
    first = client.post(MESSAGES, json={**BODY, "conversation_id": conversation})
    assert first.status_code == 200, first.text
    assert first.headers["x-llmserve-conversation-id"] == conversation
    again = {
        **BODY,
        "conversation_id": conversation,
        "messages": [{"role": "user", "content": "And 3 plus 4?"}],
    }
    second, _ = streamed_text(client, again)
    assert second
    stored = client.get("/chat/get/messages/", params={"conversation_id": conversation}).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[0]["content"] == QUESTION and stored[3]["content"] == second
    counted = client.post(MESSAGES, json={**again, "stream": False}).json()["usage"]["input_tokens"]
    alone = client.post(MESSAGES, json={**again, "conversation_id": None}).json()["usage"]["input_tokens"]
    assert counted > alone  # the stored turns went in front of the new one
