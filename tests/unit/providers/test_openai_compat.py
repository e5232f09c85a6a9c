"""The OpenAI-compatible provider where no upstream is involved (the wire tests against a loopback upstream
are in tests/e2e/providers/test_openai_compat.py)."""

from __future__ import annotations

from llmserve.config import ModelDeployment
from llmserve.providers.openai_compat import OpenAIProvider
from llmserve.types import ChatInput, ChatMessage, GenerationOptions, TextInput
from tests.unit.providers.fakes import UNUSED_API_BASE, NoCallsHTTP


def chat(text: str) -> ChatInput:
    return ChatInput((ChatMessage("user", text),), GenerationOptions())


async def test_count_tokens_is_a_character_estimate() -> None:
    http = NoCallsHTTP()
    deployment = ModelDeployment(
        name="gpt", provider="openai", model="gpt-test", api_base=f"{UNUSED_API_BASE}/v1"
    )
    provider = OpenAIProvider(deployment, http, deployment_id="gpt-a")
    assert await provider.count_tokens(chat("x" * 40)) == 10 + 4
    assert await provider.count_tokens(TextInput("x" * 41)) == 11
    assert http.calls == []
