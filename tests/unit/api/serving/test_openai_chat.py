"""openai_chat: the body and the chunks the official SDK parses, and errors after the first byte."""

from __future__ import annotations

from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llmserve.api.serving import openai_chat
from llmserve.request_context import RequestContext
from llmserve.schemas.openai import ChatCompletionRequest, ChatCompletionResponse
from tests.unit.api.serving.conftest import service, sse_payloads
from tests.unit.routing.fakes import FailAfter, FakeProvider, upstream_error

BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 8}


async def test_the_answer_is_a_chat_completion_the_sdk_and_our_schema_both_accept() -> None:
    chat, _ = service()
    reply = await openai_chat.answer(chat, ChatCompletionRequest.model_validate(BODY), RequestContext())
    parsed = ChatCompletion.model_validate(reply.body)
    assert parsed.choices[0].message.content == "hello" and parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None and parsed.usage.total_tokens == 5
    assert set(reply.body) == set(ChatCompletionResponse.model_fields)
    ChatCompletionResponse.model_validate(reply.body)
    assert reply.headers["x-llmserve-deployment"] == "hello" and reply.headers["x-llmserve-cache"] == "miss"
    assert reply.headers["x-llmserve-cost-usd"] == "0.007"


async def test_the_seed_prompt_shape_is_answered_with_its_history_in_front() -> None:
    chat, fixture = service()
    body = {"prompt": "and now?", "history": [{"role": "user", "content": "before"}], "max_tokens": 8}
    reply = await openai_chat.answer(chat, ChatCompletionRequest.model_validate(body), RequestContext())
    assert reply.body["choices"][0]["message"]["content"] == "hello"
    assert fixture.provider.calls == 1


async def test_stream_chunks_parse_as_the_sdks_chunks_and_end_with_done() -> None:
    chat, _ = service()
    body = ChatCompletionRequest.model_validate(
        {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    )
    reply = await openai_chat.stream(chat, body, RequestContext())
    payloads = await sse_payloads(reply.events)
    assert payloads[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(p) for p in payloads[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5
    assert len({c.id for c in chunks}) == 1
    assert reply.headers["x-llmserve-message-id"] in chunks[0].id


async def test_without_include_usage_no_chunk_carries_usage() -> None:
    chat, _ = service()
    reply = await openai_chat.stream(
        chat, ChatCompletionRequest.model_validate({**BODY, "stream": True}), RequestContext()
    )
    payloads = await sse_payloads(reply.events)
    assert all("usage" not in p for p in payloads if isinstance(p, dict))


async def test_a_failure_after_the_first_byte_is_an_error_event_then_done() -> None:
    chat, _ = service(FakeProvider("x", default=FailAfter(1, upstream_error(500))), cache=False)
    reply = await openai_chat.stream(
        chat, ChatCompletionRequest.model_validate({**BODY, "stream": True}), RequestContext()
    )
    payloads = await sse_payloads(reply.events)
    assert payloads[-1] == "[DONE]"
    error = payloads[-2]
    assert isinstance(error, dict) and set(error["error"]) == {"message", "type", "param", "code"}
