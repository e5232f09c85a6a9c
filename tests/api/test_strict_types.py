"""Numbers and flags in request bodies are taken as JSON sends them: a string, a boolean or a fraction
where the schema says integer (or boolean) is a 400 naming the field, not silently coerced.

Found by the fuzz tier (tests/fuzz): pydantic's lax mode took ``max_tokens: "64"``, ``n: true``,
``logprobs: false`` as an integer and ``stream: "true"``, so a client's bug changed what it asked
for without a word. An integer where a number is expected stays fine (JSON has one number type).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import user

CHAT = {"messages": [user("Hello!")], "max_tokens": 4}
SEED = {"prompt": "Hello!", "history": [], "max_tokens": 4}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {**CHAT, "max_tokens": "64"}, "max_tokens"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": True}, "max_tokens"),
        ("/v1/chat/completions", {**CHAT, "n": "1"}, "n"),
        ("/v1/chat/completions", {**CHAT, "stream": "true"}, "stream"),
        ("/v1/chat/completions", {**CHAT, "stream": 1}, "stream"),
        ("/v1/chat/completions", {**CHAT, "temperature": "0.5"}, "temperature"),
        ("/v1/chat/completions", {**CHAT, "temperature": True}, "temperature"),
        ("/v1/chat/completions", {**CHAT, "seed": "7"}, "seed"),
        ("/v1/chat/completions", {**CHAT, "logprobs": 0}, "logprobs"),
        ("/v1/chat/completions", {**CHAT, "stream_options": {"include_usage": "yes"}}, "stream_options"),
        ("/v1/chat/completions", {**CHAT, "cache": {"ttl": "60"}}, "cache"),
        ("/v1/completions", {"prompt": "Once", "max_tokens": "4"}, "max_tokens"),
        ("/v1/completions", {"prompt": "Once", "logprobs": False}, "logprobs"),
        ("/v1/completions", {"prompt": "Once", "echo": "false"}, "echo"),
        ("/v1/embeddings", {"input": "x", "dimensions": "8"}, "dimensions"),
        ("/chat/new/message/", {**SEED, "max_tokens": "64"}, "max_tokens"),
        ("/chat/new/message/", {**SEED, "top_p": "1"}, "top_p"),
        ("/chat/stream", {**SEED, "stream": "false"}, "stream"),
        ("/chat", {"message": "Hello!", "priority": "5"}, "priority"),
        ("/v1/async/chat/completions", {**CHAT, "max_tokens": "64"}, "max_tokens"),
        ("/v1/estimate", {"prompt": "Once", "max_tokens": True}, "max_tokens"),
    ],
)
def test_a_coercible_value_of_the_wrong_json_type_is_a_400(
    client: TestClient, path: str, body: dict[str, Any], param: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].split(".")[0] == param


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # Integers where numbers are expected, as the seed's own clients send them.
        ("/v1/chat/completions", {**CHAT, "temperature": 0, "top_p": 1, "presence_penalty": 0}),
        # JSON Schema's integers: 4.0 is one (a fraction is still refused).
        ("/v1/chat/completions", {**CHAT, "max_tokens": 4.0, "n": 1.0}),
        ("/chat/new/message/", {**SEED, "temperature": 1, "top_p": 1}),
        ("/chat/new/message/", {"prompt": "Hello!", "history": [], "max_tokens": 4, "temperature": 0.7}),
    ],
)
def test_integers_where_numbers_are_expected_still_work(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text


def test_the_query_of_the_get_stream_still_takes_numbers_as_text(client: TestClient) -> None:
    # A URL has only text: the GET form of the seed stream parses its numbers from it.
    response = client.get("/chat/stream", params={"prompt": "Hello!", "max_tokens": "4", "temperature": "0"})
    assert response.status_code == 200, response.text
    assert response.text.endswith("data: [DONE]\n\n")
