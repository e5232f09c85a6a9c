"""The Anthropic provider against a real Messages API upstream on loopback, over the real pooled client.

What is refused or estimated without any upstream call is in tests/unit/providers/test_anthropic.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from llmserve.config import ModelDeployment
from llmserve.errors import ContextLengthExceeded, UpstreamError
from llmserve.providers.anthropic import AnthropicProvider
from llmserve.providers.base import Provider
from llmserve.providers.http import UpstreamHTTP
from llmserve.types import ChatInput, ChatMessage, Delta, GenerationOptions, StreamEvent, TextInput, Usage
from tests.upstreams.anthropic_app import AnthropicUpstream, anthropic_server
from tests.upstreams.server import Fault, StreamReply, UpstreamServer

KEY = "sk-ant-test"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}

pytestmark = pytest.mark.e2e


@pytest.fixture
def server() -> Iterator[UpstreamServer]:
    with anthropic_server("claude-a", api_key=KEY) as upstream:
        yield upstream


@pytest.fixture
async def http() -> AsyncIterator[UpstreamHTTP]:
    client = UpstreamHTTP()
    yield client
    await client.aclose()


def make_provider(server: UpstreamServer, http: UpstreamHTTP, **fields: Any) -> AnthropicProvider:
    fields = {"api_base": server.url, "api_key": SecretStr(KEY), "timeout": 5.0, **fields}
    deployment = ModelDeployment(
        name="claude", provider="anthropic", model="claude-test-1", default_max_tokens=64, **fields
    )
    return AnthropicProvider(deployment, http, deployment_id="claude@test")


def upstream(server: UpstreamServer) -> AnthropicUpstream:
    assert isinstance(server.handler, AnthropicUpstream)
    return server.handler


def chat(*messages: tuple[str, str], **options: Any) -> ChatInput:
    return ChatInput(
        tuple(ChatMessage(role, content) for role, content in messages), GenerationOptions(**options)
    )


async def collect(provider: AnthropicProvider, request: ChatInput) -> tuple[str, list[Delta], list[Usage]]:
    deltas: list[Delta] = []
    usages: list[Usage] = []
    async for event in provider.stream(request):
        if isinstance(event, Usage):
            usages.append(event)
        else:
            deltas.append(event)
    return "".join(d.text for d in deltas), deltas, usages


def joined_tool_calls(deltas: list[Delta]) -> dict[int, dict[str, Any]]:
    """Assembles OpenAI tool_call stream fragments the way the openai SDK does."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for fragment in delta.tool_calls:
            call = calls.setdefault(fragment["index"], {"arguments": ""})
            call.update({k: fragment[k] for k in ("id", "type") if k in fragment})
            call.update({"name": fragment["function"]["name"]} if "name" in fragment["function"] else {})
            call["arguments"] += fragment["function"].get("arguments", "")
    return calls


async def test_messages_system_and_headers_are_translated(server: UpstreamServer, http: UpstreamHTTP) -> None:
    request = chat(
        ("system", "Be brief."),
        ("user", "hi"),
        ("user", "there"),
        ("assistant", "hello"),
        ("system", "Answer in English."),
        ("user", "how are you"),
        stop=("END",),
        top_p=0.5,
        top_k=40,
    )
    provider = make_provider(server, http)
    assert isinstance(provider, Provider)
    assert (provider.name, provider.deployment_id) == ("claude", "claude@test")
    completion = await provider.complete(request)

    sent = server.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    body = sent.json()
    assert body["model"] == "claude-test-1"
    assert body["max_tokens"] == 64  # the deployment's default: Anthropic requires one
    assert body["system"] == "Be brief.\n\nAnswer in English."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how are you"},
    ]
    assert (body["top_p"], body["top_k"], body["stop_sequences"]) == (0.5, 40, ["END"])
    assert "stream" not in body
    assert completion.choices[0].text == "claude-a: how are you"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 4)


async def test_api_version_and_base_with_v1_suffix(server: UpstreamServer, http: UpstreamHTTP) -> None:
    provider = make_provider(server, http, api_base=f"{server.url}/v1/", api_version="2024-01-01")
    await provider.complete(chat(("user", "hi")))
    assert server.requests[-1].path == "/v1/messages"
    assert server.requests[-1].headers["anthropic-version"] == "2024-01-01"


@pytest.mark.parametrize(("asked", "sent"), [(1.7, 1.0), (0.3, 0.3), (0.0, 0.0)])
async def test_temperature_is_clamped_to_anthropics_range(
    server: UpstreamServer, http: UpstreamHTTP, asked: float, sent: float
) -> None:
    await make_provider(server, http).complete(chat(("user", "hi"), temperature=asked))
    assert server.requests[-1].json()["temperature"] == sent
    assert "top_p" not in server.requests[-1].json()  # 1.0 is the default: not sent


async def test_max_tokens_cuts_the_reply(server: UpstreamServer, http: UpstreamHTTP) -> None:
    provider = make_provider(server, http)
    completion = await provider.complete(chat(("user", "one two three four"), max_tokens=2))
    assert server.requests[-1].json()["max_tokens"] == 2
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == ("claude-a: one", "length")
    text, deltas, usages = await collect(provider, chat(("user", "one two three four"), max_tokens=3))
    assert (text, deltas[-1].finish_reason) == ("claude-a: one two", "length")
    assert usages == [Usage(4, 3)]


async def test_stream_text_finish_and_one_usage(server: UpstreamServer, http: UpstreamHTTP) -> None:
    text, deltas, usages = await collect(make_provider(server, http), chat(("user", "tell me a story")))
    assert server.requests[-1].json()["stream"] is True
    assert text == "claude-a: tell me a story"
    assert len([d for d in deltas if d.text]) == 5  # one per word, as the upstream sent them
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
    assert deltas[-1].finish_reason == "stop"
    assert usages == [Usage(4, 5)]


async def test_raw_prompt_is_sent_as_one_user_message(server: UpstreamServer, http: UpstreamHTTP) -> None:
    completion = await make_provider(server, http).complete(TextInput("Once upon a time"))
    assert server.requests[-1].json()["messages"] == [{"role": "user", "content": "Once upon a time"}]
    assert "system" not in server.requests[-1].json()
    assert completion.choices[0].text == "claude-a: Once upon a time"


async def test_tool_call_without_streaming(server: UpstreamServer, http: UpstreamHTTP) -> None:
    request = chat(("user", "weather in Paris"), tools=(WEATHER_TOOL,), tool_choice="required")
    completion = await make_provider(server, http).complete(request)

    body = server.requests[-1].json()
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    choice = completion.choices[0]
    assert (choice.text, choice.finish_reason) == ("", "tool_calls")
    assert len(choice.tool_calls) == 1
    call = choice.tool_calls[0]
    assert (call["id"], call["type"], call["function"]["name"]) == ("toolu_01", "function", "get_weather")
    assert orjson.loads(call["function"]["arguments"]) == {"query": "weather in Paris"}


async def test_tool_call_streamed_as_openai_fragments(server: UpstreamServer, http: UpstreamHTTP) -> None:
    forced = {"type": "function", "function": {"name": "get_weather"}}
    request = chat(("user", "weather in Oslo"), tools=(WEATHER_TOOL,), tool_choice=forced)
    text, deltas, usages = await collect(make_provider(server, http), request)

    assert server.requests[-1].json()["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert text == ""
    calls = joined_tool_calls(deltas)
    assert list(calls) == [0]
    assert (calls[0]["id"], calls[0]["type"], calls[0]["name"]) == ("toolu_01", "function", "get_weather")
    assert orjson.loads(calls[0]["arguments"]) == {"query": "weather in Oslo"}
    assert deltas[-1].finish_reason == "tool_calls"
    assert len(usages) == 1


async def test_tool_results_go_back_as_tool_result_blocks(server: UpstreamServer, http: UpstreamHTTP) -> None:
    call = {
        "id": "toolu_01",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"q": 1}'},
    }
    messages = (
        ChatMessage("user", "weather in Paris"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "sunny, 21C", tool_call_id="toolu_01"),
    )
    options = GenerationOptions(tools=(WEATHER_TOOL,), tool_choice="auto")
    completion = await make_provider(server, http).complete(ChatInput(messages, options))

    body = server.requests[-1].json()
    assert body["tool_choice"] == {"type": "auto"}
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"q": 1}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny, 21C"}],
        },
    ]
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == (
        "claude-a: sunny, 21C",
        "stop",
    )


async def test_wrong_key_is_not_retryable(server: UpstreamServer, http: UpstreamHTTP) -> None:
    provider = make_provider(server, http, api_key=SecretStr("wrong"))
    with pytest.raises(UpstreamError) as raised:
        await provider.complete(chat(("user", "hi")))
    assert (raised.value.retryable, raised.value.upstream_status) == (False, 401)
    assert "invalid x-api-key" in raised.value.message


@pytest.mark.parametrize(("status", "retry_after"), [(529, None), (500, None), (429, "2")])
async def test_overload_and_server_errors_are_retryable(
    server: UpstreamServer, http: UpstreamHTTP, status: int, retry_after: str | None
) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    server.fail(Fault("status", status=status, body=body, retry_after=retry_after))
    provider = make_provider(server, http)
    with pytest.raises(UpstreamError) as raised:
        await provider.complete(chat(("user", "hi")))
    error = raised.value
    assert (error.kind, error.retryable, error.upstream_status) == ("status", True, status)
    assert error.retry_after == (2.0 if retry_after else None)
    assert "Overloaded" in error.message
    server.fail(Fault("status", status=status, body=body))
    with pytest.raises(UpstreamError) as streamed:
        await collect(provider, chat(("user", "hi")))
    assert (streamed.value.retryable, streamed.value.upstream_status) == (True, status)


async def test_prompt_too_long_is_a_context_error(server: UpstreamServer, http: UpstreamHTTP) -> None:
    upstream(server).context_tokens, upstream(server).api_key = 3, None
    with pytest.raises(ContextLengthExceeded) as raised:
        await make_provider(server, http, api_key=None).complete(chat(("user", "one two three four")))
    assert "prompt is too long" in raised.value.message
    assert "x-api-key" not in server.requests[-1].headers


async def test_connection_reset_is_retryable(server: UpstreamServer, http: UpstreamHTTP) -> None:
    server.fail(Fault("reset"), Fault("reset"))
    provider = make_provider(server, http)
    with pytest.raises(UpstreamError) as raised:
        await provider.complete(chat(("user", "hi")))
    assert raised.value.retryable
    with pytest.raises(UpstreamError) as streamed:
        await collect(provider, chat(("user", "hi")))
    assert streamed.value.retryable


async def test_hanging_upstream_times_out(server: UpstreamServer, http: UpstreamHTTP) -> None:
    server.fail_always(Fault("hang"))
    provider = make_provider(server, http, timeout=0.3)
    with pytest.raises(UpstreamError) as raised:
        await provider.complete(chat(("user", "hi")))
    assert (raised.value.kind, raised.value.retryable) == ("timeout", True)
    streaming = make_provider(server, http, first_token_timeout=0.3)  # the whole-call timeout stays 5s
    started = time.monotonic()
    with pytest.raises(UpstreamError) as streamed:
        await collect(streaming, chat(("user", "hi")))
    assert streamed.value.kind == "timeout"
    assert time.monotonic() - started < 2


async def test_stream_cut_midway_is_a_retryable_protocol_error(
    server: UpstreamServer, http: UpstreamHTTP
) -> None:
    server.fail(Fault("cut_stream", after_events=4))
    deltas: list[StreamEvent] = []
    with pytest.raises(UpstreamError) as raised:
        async for event in make_provider(server, http).stream(chat(("user", "a long answer here"))):
            deltas.append(event)
    assert (raised.value.kind, raised.value.retryable) == ("protocol", True)
    assert deltas  # what arrived before the cut was passed on


async def test_stream_without_message_stop_ended_early(server: UpstreamServer, http: UpstreamHTTP) -> None:
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 3}}}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        ),
    ]
    with (
        UpstreamServer(lambda request: StreamReply(events=events)) as short,
        pytest.raises(UpstreamError) as raised,
    ):
        await collect(make_provider(short, http), chat(("user", "hi")))
    assert raised.value.kind == "protocol"
    assert "ended early" in raised.value.message


async def test_malformed_json_is_a_protocol_error(server: UpstreamServer, http: UpstreamHTTP) -> None:
    server.fail(Fault("malformed_json"), Fault("malformed_json"))
    provider = make_provider(server, http)
    with pytest.raises(UpstreamError) as raised:
        await provider.complete(chat(("user", "hi")))
    assert (raised.value.kind, raised.value.retryable) == ("protocol", True)
    with pytest.raises(UpstreamError) as streamed:
        await collect(provider, chat(("user", "hi")))
    assert (streamed.value.kind, streamed.value.retryable) == ("protocol", True)
    assert "malformed JSON" in streamed.value.message


async def test_error_event_mid_stream(server: UpstreamServer, http: UpstreamHTTP) -> None:
    upstream(server).stream_error_after = 5  # message_start, block start, ping, two words
    texts: list[str] = []
    with pytest.raises(UpstreamError) as raised:
        async for event in make_provider(server, http).stream(chat(("user", "one two three"))):
            texts.append(event.text if isinstance(event, Delta) else "")
    error = raised.value
    assert (error.kind, error.retryable, error.upstream_status) == ("status", True, 529)
    assert "overloaded_error" in error.message
    assert "".join(texts) == "claude-a: one"


async def test_closing_the_stream_early_disconnects_the_upstream(
    server: UpstreamServer, http: UpstreamHTTP
) -> None:
    server.fail(Fault("slow_stream", delay_s=0.1))
    stream = make_provider(server, http).stream(chat(("user", "a long answer that keeps going")))
    assert isinstance(stream, AsyncGenerator)
    first = await anext(stream)
    assert isinstance(first, Delta)
    await stream.aclose()
    assert await asyncio.to_thread(server.wait_for, lambda: server.disconnects == 1)
    assert server.completed == 0
