"""Bad input gets an OpenAI error object with the right status; nothing yields a 422 or a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import user

URL = "/v1/chat/completions"


def assert_error(response: object, status: int, *, param: str | None = None, code: str | None = None) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [user("x")], "temperature": 3}, "temperature"),
        ({"messages": [user("x")], "temperature": "hot"}, "temperature"),
        ({"messages": [user("x")], "n": 0}, "n"),
        ({"messages": [user("x")], "max_tokens": 0}, "max_tokens"),
        ({"messages": [user("x")], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"messages": [user("x")], "top_p": 0}, "top_p"),
        ({}, None),
        ({"messages": [user("x")], "prompt": "y"}, None),
    ],
)
def test_invalid_parameters_are_400_not_422(client: TestClient, body: dict, param: str | None) -> None:  # type: ignore[type-arg]
    assert_error(client.post(URL, json=body), 400, param=param)


@pytest.mark.parametrize("raw", [b"{bad json", b"[1, 2]", b"", b"null", b"\xff\xfe"])
def test_malformed_bodies_are_400(client: TestClient, raw: bytes) -> None:
    assert_error(client.post(URL, content=raw, headers={"content-type": "application/json"}), 400)


def test_unknown_model_is_404(client: TestClient) -> None:
    response = client.post(URL, json={"model": "gpt-9", "messages": [user("x")]})
    assert "gpt-9" in assert_error(response, 404, param="model", code="model_not_found")["message"]
    assert_error(client.get("/v1/models/gpt-9"), 404)


def test_prompt_longer_than_the_context_is_400_with_openai_wording(client: TestClient) -> None:
    response = client.post(URL, json={"messages": [user("hello " * 4000)], "stream": True})
    error = assert_error(response, 400, code="context_length_exceeded")
    assert error["message"].startswith(
        "This model's maximum context length is 512 tokens. However, you requested"
    )


def test_max_tokens_beyond_the_context_is_400(client: TestClient) -> None:
    assert_error(
        client.post(URL, json={"messages": [user("x")], "max_tokens": 5000}),
        400,
        code="context_length_exceeded",
    )


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = {"messages": [user("x" * 70_000)]}
    assert_error(client.post(URL, json=big), 413, code="request_too_large")


def test_unsupported_features_of_the_local_model_are_400(client: TestClient) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert_error(client.post(URL, json={"messages": [user("x")], "tools": [tool]}), 400, param="tools")
    response = client.post(URL, json={"messages": [user("x")], "response_format": {"type": "json_object"}})
    assert_error(response, 400, param="response_format")
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}
    assert_error(client.post(URL, json={"messages": [image]}), 400, param="messages.0.content")


def test_bad_conversation_id_is_400_and_unknown_is_404(client: TestClient) -> None:
    assert_error(
        client.post(URL, json={"messages": [user("x")], "conversation_id": "../etc"}),
        400,
        param="conversation_id",
    )
    assert_error(client.get("/chat/get/messages/", params={"conversation_id": "never-seen"}), 404)


def test_unknown_route_and_method_are_openai_errors(client: TestClient) -> None:
    assert_error(client.get("/v1/nope"), 404)
    assert_error(client.get(URL), 405)


def test_text_content_parts_are_joined(client: TestClient) -> None:
    parts = {"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo!"}]}
    response = client.post(URL, json={"messages": [parts], "temperature": 0})
    assert response.status_code == 200
