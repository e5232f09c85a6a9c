"""The OpenAI-compatible provider against a real loopback upstream: wire shapes, streaming, failures.

What needs no upstream at all is in tests/unit/providers/test_openai_compat.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from llmserve.config import ModelDeployment
from llmserve.errors import ContextLengthExceeded, UpstreamError
from llmserve.providers.base import Provider
from llmserve.providers.http import UpstreamHTTP
from llmserve.providers.openai_compat import OpenAIProvider
from llmserve.types import ChatInput, ChatMessage, Delta, GenerationOptions, StreamEvent, TextInput, Usage
from tests.upstreams.openai_app import OpenAIUpstream, embedding_for, openai_server
from tests.upstreams.server import Fault, Reply, StreamReply, UpstreamRequest, UpstreamServer

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

pytestmark = pytest.mark.e2e


@pytest.fixture
def server() -> Iterator[UpstreamServer]:
    with openai_server("a") as upstream:
        yield upstream


@pytest.fixture
async def http() -> AsyncIterator[UpstreamHTTP]:
    client = UpstreamHTTP()
    yield client
    await client.aclose()


def make_provider(server: UpstreamServer, http: UpstreamHTTP, **fields: Any) -> OpenAIProvider:
    deployment = ModelDeployment(
        name="gpt", provider="openai", model="gpt-test", api_base=f"{server.url}/v1", **fields
    )
    return OpenAIProvider(deployment, http, deployment_id="gpt-a")


@pytest.fixture
def provider(server: UpstreamServer, http: UpstreamHTTP) -> OpenAIProvider:
    return make_provider(server, http)


def chat(text: str = "hello there", **options: Any) -> ChatInput:
    return ChatInput((ChatMessage("user", text),), GenerationOptions(**options))


async def collect(provider: OpenAIProvider, request: ChatInput | TextInput) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


def texts(events: list[StreamEvent], index: int = 0) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta) and e.index == index)


# -- happy paths -------------------------------------------------------------------------------


async def test_chat_completion_text_usage_and_wire_shape(
    server: UpstreamServer, provider: OpenAIProvider
) -> None:
    assert isinstance(provider, Provider)
    request = ChatInput(
        (ChatMessage("system", "be brief"), ChatMessage("user", "hello there")),
        GenerationOptions(max_tokens=50, temperature=0.2),
    )
    completion = await provider.complete(request)
    assert [(c.index, c.text, c.finish_reason) for c in completion.choices] == [
        (0, "[a] echo: hello there", "stop")
    ]
    assert completion.usage == Usage(prompt_tokens=12, completion_tokens=4)
    sent = server.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.json() == {
        "model": "gpt-test",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 1.0,
    }
    assert "authorization" not in sent.headers


async def test_chat_stream_yields_text_then_one_usage(
    server: UpstreamServer, provider: OpenAIProvider
) -> None:
    events = await collect(provider, chat())
    deltas = [e for e in events if isinstance(e, Delta)]
    assert [d.text for d in deltas] == ["[a]", " echo:", " hello", " there", ""]
    assert [d.finish_reason for d in deltas] == [None, None, None, None, "stop"]
    assert events[-1] == Usage(prompt_tokens=6, completion_tokens=4)
    assert sum(isinstance(e, Usage) for e in events) == 1
    sent = server.requests[-1].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_n_choices_stop_seed_and_penalties_pass_through(
    server: UpstreamServer, provider: OpenAIProvider
) -> None:
    request = chat("one two three", n=2, stop=("three",), seed=7, presence_penalty=0.5, top_k=40)
    completion = await provider.complete(request)
    assert [c.text for c in completion.choices] == ["[a] echo: one two ", "[a] echo: one two "]
    sent = server.requests[-1].json()
    assert (sent["n"], sent["stop"], sent["seed"], sent["presence_penalty"]) == (2, ["three"], 7, 0.5)
    # Fields OpenAI does not define, or left at their defaults, are not sent.
    assert not {"top_k", "ignore_eos", "frequency_penalty", "logprobs", "tools"} & set(sent)

    events = await collect(provider, chat("hi", n=2))
    assert (texts(events, 0), texts(events, 1)) == ("[a] echo: hi", "[a] echo: hi #1")


async def test_max_tokens_cut_is_reported_as_length(provider: OpenAIProvider) -> None:
    completion = await provider.complete(chat("a b c d e", max_tokens=3))
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == ("[a] echo: a", "length")


async def test_tool_calls_pass_through_both_ways(server: UpstreamServer, provider: OpenAIProvider) -> None:
    options = {"tools": (WEATHER_TOOL,), "tool_choice": "auto"}
    completion = await provider.complete(chat("weather in Paris?", **options))
    choice = completion.choices[0]
    assert (choice.text, choice.finish_reason) == ("", "tool_calls")
    (call,) = choice.tool_calls
    assert call["function"] == {"name": "get_weather", "arguments": '{"text":"weather in Paris?"}'}
    sent = server.requests[-1].json()
    assert (sent["tools"], sent["tool_choice"]) == ([WEATHER_TOOL], "auto")

    # The assistant's tool call and the tool's result go back in OpenAI's shapes.
    follow_up = ChatInput(
        (
            ChatMessage("user", "weather in Paris?"),
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", "sunny, 21C", tool_call_id=call["id"], name="get_weather"),
        ),
        GenerationOptions(tools=(WEATHER_TOOL,)),
    )
    answer = await provider.complete(follow_up)
    assert answer.choices[0].text == "[a] tool said: sunny, 21C"
    messages = server.requests[-1].json()["messages"]
    assert messages[1] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert messages[2] == {
        "role": "tool",
        "content": "sunny, 21C",
        "tool_call_id": call["id"],
        "name": "get_weather",
    }

    events = await collect(provider, chat("weather in Paris?", **options))
    deltas = [e for e in events if isinstance(e, Delta)]
    fragments = [fragment for d in deltas for fragment in d.tool_calls]
    assert fragments[0]["id"] == call["id"] and fragments[0]["function"]["name"] == "get_weather"
    assert "".join(f["function"].get("arguments", "") for f in fragments) == call["function"]["arguments"]
    assert deltas[-1].finish_reason == "tool_calls"


async def test_text_completions_plain_and_streamed(server: UpstreamServer, provider: OpenAIProvider) -> None:
    completion = await provider.complete(TextInput("Once upon", GenerationOptions(max_tokens=20)))
    assert completion.choices[0].text == "[a] echo: Once upon"
    assert completion.usage == Usage(2, 4)
    sent = server.requests[-1]
    assert sent.path == "/v1/completions" and sent.json()["prompt"] == "Once upon"

    events = await collect(provider, TextInput("Once upon"))
    assert texts(events) == "[a] echo: Once upon"
    assert events[-1] == Usage(2, 4)


async def test_embeddings_are_ordered_by_index(server: UpstreamServer, provider: OpenAIProvider) -> None:
    # The upstream lists vectors in reverse; the provider must follow each one's index.
    vectors = await provider.embed(["first", "second", "third"])
    assert vectors == [embedding_for("first"), embedding_for("second"), embedding_for("third")]
    sent = server.requests[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.json() == {"model": "gpt-test", "input": ["first", "second", "third"]}


async def test_bearer_key_is_sent_and_a_wrong_key_is_not_retryable(http: UpstreamHTTP) -> None:
    with openai_server("k", api_key="sk-right") as keyed:
        good = make_provider(keyed, http, api_key=SecretStr("sk-right"))
        assert (await good.complete(chat("hi"))).choices[0].text == "[k] echo: hi"
        assert keyed.requests[-1].headers["authorization"] == "Bearer sk-right"

        bad = make_provider(keyed, http, api_key=SecretStr("sk-wrong"))
        with pytest.raises(UpstreamError) as caught:
            await bad.complete(chat("hi"))
        assert (caught.value.retryable, caught.value.upstream_status) == (False, 401)
        assert "sk-wrong" not in str(caught.value)


async def test_context_overflow_is_context_length_exceeded(http: UpstreamHTTP) -> None:
    with openai_server("c", context_tokens=10) as small:
        provider = make_provider(small, http)
        with pytest.raises(ContextLengthExceeded, match="maximum context length is 10 tokens"):
            await provider.complete(chat("many words " * 10))
        with pytest.raises(ContextLengthExceeded):
            await collect(provider, chat("hi", max_tokens=100))


# -- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(
    server: UpstreamServer, provider: OpenAIProvider, status: int
) -> None:
    server.fail(Fault("status", status=status))
    with pytest.raises(UpstreamError) as caught:
        await provider.complete(chat())
    assert (caught.value.retryable, caught.value.upstream_status) == (True, status)
    assert (await provider.complete(chat())).choices[0].text == "[a] echo: hello there"


async def test_rate_limit_honours_retry_after(server: UpstreamServer, provider: OpenAIProvider) -> None:
    server.fail(Fault("status", status=429, retry_after="7"), Fault("status", status=429, retry_after="2"))
    with pytest.raises(UpstreamError) as caught:
        await provider.complete(chat())
    assert (caught.value.retryable, caught.value.retry_after, caught.value.status_code) == (True, 7.0, 429)
    with pytest.raises(UpstreamError) as streamed:
        await collect(provider, chat())
    assert streamed.value.retry_after == 2.0


async def test_connection_reset_is_retryable(server: UpstreamServer, provider: OpenAIProvider) -> None:
    server.fail(Fault("reset"), Fault("reset"))
    with pytest.raises(UpstreamError) as caught:
        await provider.complete(chat())
    assert caught.value.retryable and caught.value.kind in {"connect", "protocol"}
    with pytest.raises(UpstreamError):
        await collect(provider, chat())


async def test_a_hanging_upstream_times_out_on_time(server: UpstreamServer, http: UpstreamHTTP) -> None:
    provider = make_provider(server, http, timeout=0.3)
    server.fail(Fault("hang"), Fault("hang"))
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        await provider.complete(chat())
    assert caught.value.kind == "timeout" and caught.value.retryable
    assert 0.25 < time.monotonic() - started < 1.5
    started = time.monotonic()
    with pytest.raises(UpstreamError, match=r"no first token|no answer") as streamed:
        await collect(provider, chat())
    assert streamed.value.kind == "timeout"
    assert time.monotonic() - started < 1.5
    # The upstream sees both calls go away rather than holding them open.
    assert await asyncio.to_thread(server.wait_for, lambda: server.disconnects == 2)


async def test_a_stream_cut_midway_fails_after_the_first_deltas(
    server: UpstreamServer, provider: OpenAIProvider
) -> None:
    server.fail(Fault("cut_stream", after_events=3))  # role chunk + two words, then the socket closes
    received: list[str] = []
    with pytest.raises(UpstreamError) as caught:
        async for event in provider.stream(chat()):
            assert isinstance(event, Delta)
            received.append(event.text)
    assert received == ["[a]", " echo:"]
    assert caught.value.retryable


async def test_malformed_json_body_and_stream_are_protocol_errors(
    server: UpstreamServer, provider: OpenAIProvider
) -> None:
    server.fail(Fault("malformed_json"), Fault("malformed_json"))
    with pytest.raises(UpstreamError) as body:
        await provider.complete(chat())
    assert (body.value.kind, body.value.retryable) == ("protocol", True)
    with pytest.raises(UpstreamError) as stream:
        await collect(provider, chat())
    assert (stream.value.kind, stream.value.retryable, stream.value.deployment) == ("protocol", True, "gpt-a")


async def test_a_stream_slower_than_the_idle_timeout_fails(
    server: UpstreamServer, http: UpstreamHTTP
) -> None:
    provider = make_provider(server, http, first_token_timeout=2.0, stream_idle_timeout=0.1)
    server.fail(Fault("slow_stream", delay_s=0.3))  # first event at 0.3 s (allowed), next 0.3 s later
    started = time.monotonic()
    with pytest.raises(UpstreamError, match="stalled") as caught:
        await collect(provider, chat())
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 1.5


async def test_closing_the_stream_early_disconnects_the_upstream(
    server: UpstreamServer, provider: OpenAIProvider
) -> None:
    server.fail(Fault("slow_stream", delay_s=0.05))
    stream = provider.stream(chat("a long answer that takes a while to stream back"))
    first = await anext(stream)
    assert isinstance(first, Delta) and first.text == "[a]"
    await stream.aclose()  # what the gateway does when its client goes away
    assert await asyncio.to_thread(server.wait_for, lambda: server.disconnects == 1)
    assert server.completed == 0


# -- upstreams that bend the protocol ------------------------------------------------------------


async def test_an_answer_without_choices_is_a_protocol_error(http: UpstreamHTTP) -> None:
    with UpstreamServer(lambda _: Reply(200, {"object": "chat.completion"})) as odd:
        with pytest.raises(UpstreamError) as caught:
            await make_provider(odd, http).complete(chat())
        assert (caught.value.kind, caught.value.retryable) == ("protocol", True)


async def test_missing_usage_and_unknown_finish_reason(http: UpstreamHTTP) -> None:
    upstream = OpenAIUpstream("u")

    def no_usage(request: UpstreamRequest) -> Reply | StreamReply:
        reply = upstream(request)
        if isinstance(reply, Reply):
            reply.body.pop("usage")
            reply.body["choices"][0]["finish_reason"] = "eos_token"
        else:
            reply.events = [(n, d) for n, d in reply.events if not (isinstance(d, dict) and "usage" in d)]
        return reply

    with UpstreamServer(no_usage) as bare:
        provider = make_provider(bare, http)
        completion = await provider.complete(chat("hi"))
        # No usage from the upstream: an estimate from the text (chars/4), marked as one.
        assert completion.usage.estimated and completion.usage.prompt_tokens > 0
        assert completion.usage.completion_tokens == -(-len(completion.choices[0].text) // 4)
        assert completion.choices[0].finish_reason == "stop"
        events = await collect(provider, chat("one two"))
        # No usage from the upstream: each content delta counts as one completion token.
        last = events[-1]
        assert isinstance(last, Usage) and last.estimated
        assert (last.completion_tokens, last.prompt_tokens) == (
            4,
            await provider.count_tokens(chat("one two")),
        )


async def test_a_stream_that_stops_without_finishing_is_an_error(http: UpstreamHTTP) -> None:
    def truncated(_: UpstreamRequest) -> StreamReply:
        return StreamReply([(None, {"choices": [{"index": 0, "delta": {"content": "half"}}]})])

    with UpstreamServer(truncated) as odd:
        with pytest.raises(UpstreamError, match="ended early") as caught:
            await collect(make_provider(odd, http), chat())
        assert (caught.value.kind, caught.value.retryable) == ("protocol", True)


async def test_an_error_event_in_the_stream_is_retryable(http: UpstreamHTTP) -> None:
    def overloaded(_: UpstreamRequest) -> StreamReply:
        error = {"error": {"message": "Overloaded", "type": "server_error", "code": None}}
        first = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
        return StreamReply([(None, first), (None, error), (None, "[DONE]")])

    with UpstreamServer(overloaded) as odd:
        received: list[StreamEvent] = []
        with pytest.raises(UpstreamError, match="Overloaded") as caught:
            async for event in make_provider(odd, http).stream(chat()):
                received.append(event)
        assert received == [Delta(0, "Hi")]
        assert caught.value.retryable
