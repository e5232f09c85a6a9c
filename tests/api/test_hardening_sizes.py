"""Issue 14: one size rule. A message over the guardrails' max_message_chars is the same 413 on every
route, /v1/tokenize and /v1/estimate included (before any tokenizing); no schema 400 fires first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings

LIMIT = 1000
LONG = "x" * (LIMIT + 1)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=str(tmp_path_factory.mktemp("sizes")),
        guardrails={"max_message_chars": LIMIT, "max_messages": 3},
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": LONG}], "max_tokens": 2}),
        ("/v1/completions", {"prompt": LONG, "max_tokens": 2}),
        ("/v1/tokenize", {"prompt": LONG}),
        ("/v1/tokenize", {"messages": [{"role": "user", "content": LONG}]}),
        ("/v1/estimate", {"messages": [{"role": "user", "content": LONG}]}),
        ("/chat/new/message/", {"prompt": LONG, "max_tokens": 2}),
        ("/chat/stream", {"prompt": LONG, "max_tokens": 2}),
    ],
)
def test_a_message_over_max_message_chars_is_the_same_413_everywhere(
    small: TestClient, path: str, body: dict[str, object]
) -> None:
    response = small.post(path, json=body)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "request_too_large"
    assert "too long" in response.json()["error"]["message"]


def test_the_event_source_route_takes_the_same_prompt_sizes_as_the_post_routes(small: TestClient) -> None:
    # GET /chat/stream had its own 16,000-character cap (a 400) where the POST routes take up to
    # max_message_chars; now the one rule answers both, and a URL is otherwise bounded by the head limit.
    refused = small.get("/chat/stream", params={"prompt": LONG, "max_tokens": 2})
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "request_too_large"


def test_a_body_over_the_byte_limit_has_the_same_code_as_a_message_over_the_character_limit(
    small: TestClient,
) -> None:
    body = {"messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    response = small.post("/v1/chat/completions", json=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_tokenize_refuses_more_messages_than_chat_takes(small: TestClient) -> None:
    messages = [{"role": "user", "content": "hi"}] * 4
    assert small.post("/v1/tokenize", json={"messages": messages}).status_code == 400
    assert small.post("/v1/tokenize", json={"messages": messages[:3]}).status_code == 200
