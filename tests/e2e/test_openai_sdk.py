"""The official openai SDK, unchanged but for base_url, on a live server: sync, async, streaming, errors."""

from __future__ import annotations

import asyncio

import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.live_server import LiveServer

pytestmark = pytest.mark.e2e


def user(content: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": content}]


def test_sync_chat_completion(openai_client: OpenAI, live_server: LiveServer) -> None:
    reply = openai_client.chat.completions.create(
        model=live_server.model, messages=user("Hello!"), temperature=0
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content, "an empty reply"
    assert choice.finish_reason == "stop", "tiny-chat ends its short replies by itself"
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == live_server.model
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_stream_with_usage_adds_up_to_the_whole_reply(openai_client: OpenAI, live_server: LiveServer) -> None:
    whole = openai_client.chat.completions.create(
        model=live_server.model, messages=user("What is your name?"), temperature=0
    )
    stream = openai_client.chat.completions.create(
        model=live_server.model,
        messages=user("What is your name?"),
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({chunk.id for chunk in chunks}) == 1, "every chunk of one completion has its id"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content, "greedy decoding streams what it returns whole"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None, "include_usage: a last chunk carries usage"
    assert whole.usage is not None
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


async def test_async_client_concurrent_and_streaming(
    async_openai_client: AsyncOpenAI, live_server: LiveServer
) -> None:
    prompts = ["你好", "What is 2 plus 3?", "Thanks!"]
    replies = await asyncio.gather(
        *(
            async_openai_client.chat.completions.create(
                model=live_server.model, messages=user(prompt), temperature=0
            )
            for prompt in prompts
        )
    )
    contents = [reply.choices[0].message.content for reply in replies]
    assert all(contents), contents
    assert len({reply.id for reply in replies}) == len(prompts)

    stream = await async_openai_client.chat.completions.create(
        model=live_server.model, messages=user(prompts[0]), temperature=0, stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(pieces) == contents[0], "a reply does not depend on what ran beside it"


def test_models_list_and_retrieve(openai_client: OpenAI, live_server: LiveServer) -> None:
    models = list(openai_client.models.list())
    assert [model.id for model in models] == [live_server.model]
    assert models[0].object == "model"
    assert openai_client.models.retrieve(live_server.model).id == live_server.model


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_unknown_model_is_not_found(openai_client: OpenAI, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.chat.completions.create(model="gpt-9", messages=user("Hello!"), stream=stream)
    error = raised.value
    assert error.status_code == 404
    assert error.code == "model_not_found" and error.param == "model"
    assert "gpt-9" in error.message


def test_unknown_model_retrieve_is_not_found(openai_client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("gpt-9")


def test_invalid_parameter_is_a_bad_request(openai_client: OpenAI, live_server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.chat.completions.create(model=live_server.model, messages=user("Hello!"), temperature=5)
    assert raised.value.status_code == 400, "invalid input is 400, never 422"
    assert raised.value.param == "temperature"
    assert raised.value.type == "invalid_request_error"


def test_prompt_over_the_context_is_a_bad_request(openai_client: OpenAI, live_server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.chat.completions.create(model=live_server.model, messages=user("hello " * 2000))
    assert raised.value.code == "context_length_exceeded"
    assert "maximum context length" in raised.value.message
