"""api/serving/responses_native: which /v1/responses requests carry the client's body (a group that
can reach a ``responses_api: native`` deployment, itself or by falling back), and that body's
``input``: the stored chain without llmserve's ids, then this input as the client sent it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmserve.api.serving.responses_convert import normalized_input
from llmserve.api.serving.responses_native import native_request, reaches_native
from llmserve.config import load_settings
from llmserve.providers.http import UpstreamHTTP
from llmserve.providers.openai_responses_native import PROTOCOL
from llmserve.schemas.responses import ResponsesRequest
from llmserve.services.models import ModelRegistry
from llmserve.types import ChatMessage


def remote(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": "openai", "model": "m", "api_base": "http://127.0.0.1:9/v1", **fields}


@pytest.fixture
async def registry() -> AsyncIterator[ModelRegistry]:
    settings = load_settings(
        models=[remote("native", responses_api="native"), remote("chat"), remote("front"), remote("long")],
        router={"fallbacks": {"front": ["chat"]}, "context_window_fallbacks": {"chat": ["native"]}},
    )
    built = ModelRegistry.from_settings(settings, UpstreamHTTP())
    try:
        yield built
    finally:
        await built.close()


def test_a_group_reaches_native_itself_or_through_its_fallbacks(registry: ModelRegistry) -> None:
    assert reaches_native(registry, "native")
    assert reaches_native(registry, "chat")  # its context-window fallback is native
    assert reaches_native(registry, "front")  # front → chat → native
    assert not reaches_native(registry, "long")
    assert not reaches_native(registry, "no-such-model")  # the pipeline answers its 404


def test_the_input_is_the_stored_chain_then_this_input_as_sent() -> None:
    body = ResponsesRequest.model_validate(
        {
            "model": "native",
            "previous_response_id": "resp_1",
            "prompt_cache_key": "k",  # unknown to the pipeline: kept
            "input": [
                {"type": "reasoning", "id": "rs_1", "summary": []},  # a bare id: dropped
                {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "xyz"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            ],
        }
    )
    prior: list[dict[str, Any]] = [
        {"type": "message", "id": "msg_a", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "id": "rs_0", "summary": []},
        {"type": "function_call", "id": "fc_b", "call_id": "call_1", "name": "f", "arguments": "{}"},
    ]
    messages = [ChatMessage("user", "hi")]
    carried = native_request(body, prior, normalized_input(body), messages)
    assert carried.protocol == PROTOCOL and carried.messages == tuple(messages)
    assert carried.body["prompt_cache_key"] == "k" and carried.body["model"] == "native"
    assert carried.body["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "xyz"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]


def test_a_string_input_is_one_user_message() -> None:
    hello = ResponsesRequest.model_validate({"input": "Hello"})
    carried = native_request(hello, [], normalized_input(hello), [])
    assert carried.body == {"input": [{"type": "message", "role": "user", "content": "Hello"}]}
