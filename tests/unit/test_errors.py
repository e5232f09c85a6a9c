"""The OpenAI error body: the shape every client library parses, every key present even when empty."""

from __future__ import annotations

from llmserve.errors import error_body


def test_error_body_has_openai_shape_with_every_key() -> None:
    assert error_body("No such model", "invalid_request_error") == {
        "error": {"message": "No such model", "type": "invalid_request_error", "param": None, "code": None}
    }


def test_error_body_carries_param_and_code() -> None:
    body = error_body("Too long", "invalid_request_error", param="messages", code="context_length_exceeded")
    assert body["error"]["param"] == "messages"
    assert body["error"]["code"] == "context_length_exceeded"
