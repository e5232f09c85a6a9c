"""providers/anthropic: a client's own Messages body goes upstream as sent while the pipeline left its
messages alone; the client's protocol headers are forwarded, its credentials never."""

from __future__ import annotations

from typing import Any

import pytest

from llmserve.config import ModelDeployment
from llmserve.errors import InvalidRequest
from llmserve.providers.anthropic import build_payload
from llmserve.providers.anthropic_native import forwarded_headers
from llmserve.types import ChatInput, ChatMessage, GenerationOptions, NativeRequest

DEPLOYMENT = ModelDeployment(
    name="claude", provider="anthropic", model="claude-upstream", api_base="http://x"
)
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
BODY: dict[str, Any] = {
    "model": "claude",
    "max_tokens": 32,
    "stream": True,
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "messages": [
        {"role": "user", "content": [IMAGE, {"type": "text", "text": "What is it?", "cache_control": {}}]}
    ],
}
MESSAGES = (ChatMessage("user", "What is it?"),)
HEADERS = (("anthropic-version", "2023-06-01"), ("anthropic-beta", "b1,b2"), ("x-api-key", "client-key"))


def request(messages: tuple[ChatMessage, ...] = MESSAGES, *, translatable: bool = False) -> ChatInput:
    native = NativeRequest("anthropic", BODY, MESSAGES, HEADERS, translatable)
    return ChatInput(messages, GenerationOptions(max_tokens=32, native=native))


def test_the_body_goes_as_sent_with_the_deployments_model() -> None:
    payload = build_payload(DEPLOYMENT, request(), stream=False)
    assert payload == {**{k: v for k, v in BODY.items() if k != "stream"}, "model": "claude-upstream"}
    assert build_payload(DEPLOYMENT, request(), stream=True)["stream"] is True


def test_messages_the_guardrails_rewrote_are_translated_instead() -> None:
    masked = (ChatMessage("user", "What is [REDACTED]?"),)
    payload = build_payload(DEPLOYMENT, request(masked, translatable=True), stream=False)
    assert payload["messages"] == [{"role": "user", "content": "What is [REDACTED]?"}]
    assert "thinking" not in payload


def test_an_image_that_cannot_follow_rewritten_messages_is_a_400_not_a_silent_loss() -> None:
    with pytest.raises(InvalidRequest, match="rewrote"):
        build_payload(DEPLOYMENT, request((ChatMessage("user", "masked"),)), stream=False)


def test_only_the_protocol_headers_are_forwarded() -> None:
    assert forwarded_headers(request()) == {"anthropic-version": "2023-06-01", "anthropic-beta": "b1,b2"}
    assert forwarded_headers(ChatInput(MESSAGES)) == {}
