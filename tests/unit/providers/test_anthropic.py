"""The Anthropic provider where it must not reach its upstream: refused options and embeddings, and the
token estimate. The wire tests against a loopback Messages API are in tests/e2e/providers/test_anthropic.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from llmserve.config import ModelDeployment
from llmserve.errors import InvalidRequest
from llmserve.providers.anthropic import AnthropicProvider
from llmserve.types import ChatInput, ChatMessage, GenerationOptions, TextInput
from tests.unit.providers.fakes import UNUSED_API_BASE, NoCallsHTTP


@pytest.fixture
def http() -> NoCallsHTTP:
    return NoCallsHTTP()


@pytest.fixture
def provider(http: NoCallsHTTP) -> AnthropicProvider:
    deployment = ModelDeployment(
        name="claude",
        provider="anthropic",
        model="claude-test-1",
        default_max_tokens=64,
        api_base=UNUSED_API_BASE,
        api_key=SecretStr("sk-ant-test"),
        timeout=5.0,
    )
    return AnthropicProvider(deployment, http, deployment_id="claude@test")


def chat(*messages: tuple[str, str], **options: Any) -> ChatInput:
    return ChatInput(
        tuple(ChatMessage(role, content) for role, content in messages), GenerationOptions(**options)
    )


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"n": 2}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
    ],
)
async def test_unsupported_options_are_refused_before_any_call(
    provider: AnthropicProvider, http: NoCallsHTTP, options: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await provider.complete(chat(("user", "hi"), **options))
    assert raised.value.param == param
    with pytest.raises(InvalidRequest):
        _ = [event async for event in provider.stream(chat(("user", "hi"), **options))]
    assert http.calls == []


async def test_embeddings_are_refused_and_tokens_estimated(
    provider: AnthropicProvider, http: NoCallsHTTP
) -> None:
    with pytest.raises(InvalidRequest):
        await provider.embed(["hi"])
    assert await provider.count_tokens(chat(("system", "abcd"), ("user", "abcde"))) == (1 + 4) + (2 + 4)
    assert await provider.count_tokens(TextInput("")) == 4
    assert http.calls == []
