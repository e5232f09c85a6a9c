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
    ],
)
def test_a_message_over_max_message_chars_is_the_same_413_everywhere(
    small: TestClient, path: str, body: dict[str, object]
) -> None:
    response = small.post(path, json=body)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "guardrail_violation"
    assert "too long" in response.json()["error"]["message"]


def test_tokenize_refuses_more_messages_than_chat_takes(small: TestClient) -> None:
    messages = [{"role": "user", "content": "hi"}] * 4
    assert small.post("/v1/tokenize", json={"messages": messages}).status_code == 400
    assert small.post("/v1/tokenize", json={"messages": messages[:3]}).status_code == 200
