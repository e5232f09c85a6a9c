"""Python frameworks that default to the Responses API, unchanged against a live server on the
bundled model: LangChain's ``ChatOpenAI(use_responses_api=True)`` (invoke and stream) and the OpenAI
Agents SDK's default model (``Runner.run``, a streamed run, and a turn chained by
``previous_response_id``). Each answer is checked against the response llmserve stored, which also
proves the framework spoke ``/v1/responses`` (a chat completion stores nothing there)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import agents
import pytest
from agents import Agent, ModelSettings, Runner
from agents.models import _openai_shared
from langchain_core.messages import AIMessageChunk, BaseMessageChunk, HumanMessage
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI, OpenAI

from tests.live_server import LiveServer

pytestmark = pytest.mark.e2e

MAX_TOKENS = 24  # short answers keep the tier fast on CPU; greedy so two calls say the same


@pytest.fixture
def stored(live_server: LiveServer) -> Iterator[OpenAI]:
    """The official SDK, to read what llmserve stored."""
    with OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=60) as client:
        yield client


# -- LangChain ------------------------------------------------------------------------------------


def test_langchain_chat_openai_on_the_responses_api_invokes_and_streams(
    live_server: LiveServer, stored: OpenAI
) -> None:
    llm = ChatOpenAI(
        model=live_server.model,
        base_url=f"{live_server.url}/v1",
        api_key="unused",
        use_responses_api=True,
        temperature=0,
        max_tokens=MAX_TOKENS,
        max_retries=0,
        timeout=60,
    )
    answer = llm.invoke("What is your name?")
    assert answer.text and answer.id is not None and answer.id.startswith("resp_")
    assert answer.usage_metadata is not None and answer.usage_metadata["input_tokens"] > 0
    assert stored.responses.retrieve(answer.id).output_text == answer.text

    chunks: list[BaseMessageChunk] = list(llm.stream("What is your name?"))
    assert len(chunks) > 2  # streamed as deltas, not one final message
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert total.text == answer.text
    assert total.usage_metadata == answer.usage_metadata
    streamed_id = total.response_metadata["id"]
    assert stored.responses.retrieve(streamed_id).output_text == answer.text

    # The framework's multi-turn shape: the earlier answer goes back as an assistant message.
    follow_up = llm.invoke([HumanMessage("What is your name?"), answer, HumanMessage("Tell me more.")])
    assert follow_up.text and follow_up.usage_metadata is not None
    assert follow_up.usage_metadata["input_tokens"] > answer.usage_metadata["input_tokens"]


# -- the OpenAI Agents SDK ------------------------------------------------------------------------


@pytest.fixture
async def agents_default_client(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncOpenAI]:
    """The Agents SDK pointed at llmserve the way its docs say: a default client, tracing off (its
    exporter would post traces to api.openai.com). The default client is process-wide state, so the
    earlier one is put back after the test."""
    monkeypatch.setattr(_openai_shared, "_default_openai_client", _openai_shared.get_default_openai_client())
    client = AsyncOpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=60)
    agents.set_default_openai_client(client, use_for_tracing=False)
    agents.set_tracing_disabled(True)
    async with client:
        yield client


async def test_the_agents_sdk_default_model_runs_streams_and_chains(
    live_server: LiveServer, agents_default_client: AsyncOpenAI
) -> None:
    # A model *name*: the SDK's default provider picks its default model, the Responses one.
    agent = Agent(
        name="Assistant",
        instructions="You are terse.",
        model=live_server.model,
        model_settings=ModelSettings(temperature=0, max_tokens=MAX_TOKENS),
    )
    result = await Runner.run(agent, "What is your name?")
    assert isinstance(result.final_output, str) and result.final_output
    assert result.context_wrapper.usage.input_tokens > 0
    first_id = result.last_response_id
    assert first_id is not None and first_id.startswith("resp_")
    assert (await agents_default_client.responses.retrieve(first_id)).output_text == result.final_output

    streamed = Runner.run_streamed(agent, "What is your name?")
    kinds = [
        event.data.type async for event in streamed.stream_events() if event.type == "raw_response_event"
    ]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    assert streamed.final_output == result.final_output

    chained = await Runner.run(agent, "Tell me more.", previous_response_id=first_id)
    assert chained.final_output and chained.last_response_id is not None
    retrieved = await agents_default_client.responses.retrieve(chained.last_response_id)
    assert retrieved.previous_response_id == first_id
    # The chain's context reached the model: more prompt than the same turn alone.
    fresh = await Runner.run(agent, "Tell me more.")
    assert chained.context_wrapper.usage.input_tokens > fresh.context_wrapper.usage.input_tokens
