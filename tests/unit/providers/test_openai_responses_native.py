"""providers/openai_responses_native: a deployment with ``responses_api: native`` sends the client's
Responses body to ``/responses`` and maps the Response JSON and typed events to the pipeline's
Completion / deltas / usage, failures raised as the chat path raises them. The upstream's answers are
the loopback app's (tests/upstreams/openai_responses_app.py), checked here against the SDK's types."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError

from llmserve.config import ModelDeployment
from llmserve.errors import ContextLengthExceeded, InvalidRequest, UpstreamError
from llmserve.providers.http import SSEEvent, Timeouts, UpstreamHTTP
from llmserve.providers.openai_compat import OpenAIProvider
from llmserve.providers.openai_responses_native import PROTOCOL, native_payload
from llmserve.types import ChatInput, ChatMessage, Delta, GenerationOptions, NativeRequest, Usage
from tests.upstreams.openai_responses_app import OpenAIResponsesUpstream
from tests.upstreams.server import Reply, StreamReply, UpstreamRequest

NATIVE = ModelDeployment(
    name="agent", provider="openai", model="gpt-up", api_base="http://up/v1", responses_api="native"
)
TRANSLATED = NATIVE.model_copy(update={"responses_api": "translate"})
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
MESSAGES = (ChatMessage("user", "Hello there"),)
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "agent", "input": [{"role": "user", "content": "Hello there"}], **fields}


def request(sent: dict[str, Any], messages: tuple[ChatMessage, ...] = MESSAGES, **options: Any) -> ChatInput:
    native = NativeRequest(PROTOCOL, sent, MESSAGES)
    return ChatInput(messages, GenerationOptions(native=native, **options))


class LoopbackHTTP(UpstreamHTTP):
    """Answers with the loopback app's handler, in process; records what was sent where."""

    def __init__(self, upstream: OpenAIResponsesUpstream | None = None) -> None:
        super().__init__()
        self.upstream = upstream or OpenAIResponsesUpstream("up")
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.replace: list[tuple[str | None, Any]] | None = None  # events to send instead

    def _answer(self, url: str, payload: Mapping[str, Any]) -> Reply | StreamReply:
        self.sent.append((url, dict(payload)))
        path = "/v1" + url.removeprefix(NATIVE.api_base or "")
        return self.upstream(UpstreamRequest("POST", path, {}, orjson.dumps(payload)))

    async def post_json(
        self, url: str, payload: Mapping[str, Any], headers: Mapping[str, str], **_: Any
    ) -> Any:
        reply = self._answer(url, payload)
        assert isinstance(reply, Reply) and reply.status == 200, reply
        return reply.body

    async def stream_sse(
        self, url: str, payload: Mapping[str, Any], headers: Mapping[str, str], **_: Any
    ) -> AsyncGenerator[SSEEvent, None]:
        reply = self._answer(url, payload)
        assert isinstance(reply, StreamReply), reply
        for name, data in reply.events if self.replace is None else self.replace:
            yield SSEEvent(name, data if isinstance(data, str) else orjson.dumps(data).decode())


def provider(http: UpstreamHTTP, deployment: ModelDeployment = NATIVE) -> OpenAIProvider:
    return OpenAIProvider(deployment, http, "agent#0")


async def collect(events: AsyncGenerator[Any, None]) -> list[Any]:
    return [event async for event in events]


# -- what is sent ---------------------------------------------------------------------------------


def test_the_body_goes_as_sent_with_the_deployments_model_and_nothing_stored_upstream() -> None:
    sent = body(reasoning={"effort": "low"}, include=["reasoning.encrypted_content"], prompt_cache_key="k")
    sent.update(previous_response_id="resp_1", background=False, stream=True, store=True, priority=3)
    payload = native_payload(NATIVE, request(sent, max_tokens=40), stream=False)
    assert payload == {
        **body(reasoning={"effort": "low"}, include=["reasoning.encrypted_content"], prompt_cache_key="k"),
        "model": "gpt-up",
        "store": False,
        "max_output_tokens": 40,
    }
    assert (native_payload(NATIVE, request(sent), stream=True) or {})["stream"] is True


def test_no_native_body_without_the_flag_or_after_the_pipeline_rewrote_the_messages() -> None:
    assert native_payload(TRANSLATED, request(body()), stream=False) is None
    masked = (ChatMessage("user", "Hello [REDACTED]"),)
    assert native_payload(NATIVE, request(body(), masked), stream=False) is None
    anthropic = ChatInput(MESSAGES, GenerationOptions(native=NativeRequest("anthropic", body(), MESSAGES)))
    assert native_payload(NATIVE, anthropic, stream=False) is None


async def test_the_provider_posts_to_responses_only_where_the_deployment_is_native() -> None:
    http = LoopbackHTTP()
    await provider(http).complete(request(body()))
    await provider(http, TRANSLATED).complete(request(body()))
    assert [url for url, _ in http.sent] == ["http://up/v1/responses", "http://up/v1/chat/completions"]


def test_a_config_refuses_the_flag_where_no_upstream_speaks_the_responses_api() -> None:
    with pytest.raises(ValidationError, match="responses_api"):
        ModelDeployment(name="c", provider="anthropic", model="claude", responses_api="native")


# -- the loopback's wire shapes are the SDK's ------------------------------------------------------


@pytest.mark.parametrize(
    "fields", [{}, {"tools": [WEATHER]}, {"reasoning": {"effort": "low"}}, {"max_output_tokens": 2}]
)
def test_the_loopback_answers_in_the_sdks_types(fields: dict[str, Any]) -> None:
    upstream = OpenAIResponsesUpstream("up")
    plain = upstream(UpstreamRequest("POST", "/v1/responses", {}, orjson.dumps(body(**fields))))
    assert isinstance(plain, Reply)
    Response.model_validate(plain.body)
    streamed = upstream(
        UpstreamRequest("POST", "/v1/responses", {}, orjson.dumps(body(stream=True, **fields)))
    )
    assert isinstance(streamed, StreamReply)
    for position, (name, data) in enumerate(streamed.events):
        assert EVENTS.validate_python(data).type == name and data["sequence_number"] == position


# -- the answer -----------------------------------------------------------------------------------


async def test_text_and_usage_with_cached_and_reasoning_tokens() -> None:
    sent = body(reasoning={"effort": "low"})
    sent["input"] = [{"role": "user", "content": "one two"}, *sent["input"]]
    completion = await provider(LoopbackHTTP()).complete(request(sent))
    (choice,) = completion.choices
    assert (choice.text, choice.finish_reason, choice.tool_calls) == ("[up] echo: Hello there", "stop", ())
    # 2+4 and 2+4 input tokens, the first item's cached; 4 words said plus 3 reasoning.
    assert completion.usage == Usage(12, 7, cached_tokens=6, reasoning_tokens=3)


async def test_a_function_call_becomes_a_chat_tool_call() -> None:
    completion = await provider(LoopbackHTTP()).complete(request(body(tools=[WEATHER])))
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls" and choice.text == ""
    assert choice.tool_calls == (
        {
            "id": "call_up_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"text":"Hello there"}'},
        },
    )


async def test_an_answer_cut_by_max_output_tokens_is_length() -> None:
    completion = await provider(LoopbackHTTP()).complete(request(body(), max_tokens=2))
    assert completion.choices[0].text == "[up] echo:" and completion.choices[0].finish_reason == "length"


async def test_a_failed_response_is_a_retryable_upstream_error() -> None:
    http = LoopbackHTTP()
    http.upstream.fail_responses = 2
    with pytest.raises(UpstreamError, match="server_error") as raised:
        await provider(http).complete(request(body()))
    assert raised.value.retryable
    with pytest.raises(UpstreamError):
        await collect(provider(http).stream(request(body())))


# -- the stream -----------------------------------------------------------------------------------


async def test_streamed_text_then_the_finish_then_the_usage() -> None:
    events = await collect(provider(LoopbackHTTP()).stream(request(body())))
    *deltas, usage = events
    assert "".join(d.text for d in deltas) == "[up] echo: Hello there"
    assert deltas[-1] == Delta(0, "", "stop") and len(deltas) == 5
    assert usage == Usage(6, 4)


async def test_a_streamed_function_call_arrives_as_chat_tool_call_fragments() -> None:
    events = await collect(provider(LoopbackHTTP()).stream(request(body(tools=[WEATHER]))))
    head, first, second, finish, _ = events
    assert head.tool_calls == (
        {
            "index": 0,
            "id": "call_up_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
    )
    fragments = [first.tool_calls[0]["function"]["arguments"], second.tool_calls[0]["function"]["arguments"]]
    assert "".join(fragments) == '{"text":"Hello there"}'
    assert finish.finish_reason == "tool_calls"


def error_event(code: str | None) -> tuple[str, Any]:
    return "error", {
        "type": "error",
        "code": code,
        "message": "it broke",
        "param": None,
        "sequence_number": 2,
    }


@pytest.mark.parametrize(
    ("events", "raised"),
    [
        ([error_event("server_error")], UpstreamError),
        ([error_event(None)], UpstreamError),
        ([error_event("context_length_exceeded")], ContextLengthExceeded),
        ([error_event("invalid_prompt")], InvalidRequest),
        ([(None, "{not json")], UpstreamError),
        ([], UpstreamError),  # ended without response.completed
    ],
)
async def test_stream_failures_raise_as_the_chat_paths(
    events: list[tuple[str | None, Any]], raised: type
) -> None:
    http = LoopbackHTTP()
    http.replace = [("response.created", {"type": "response.created", "sequence_number": 0}), *events]
    with pytest.raises(raised):
        await collect(provider(http).stream(request(body())))


async def test_a_stream_without_usage_is_estimated_and_says_so() -> None:
    http = LoopbackHTTP()
    completed: dict[str, Any] = {"status": "completed", "output": [], "usage": None}
    http.replace = [
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "hi"}),
        ("response.completed", {"type": "response.completed", "response": completed}),
    ]
    *_, usage = await collect(provider(http).stream(request(body())))
    assert usage.estimated and usage.completion_tokens == 1 and usage.prompt_tokens > 0


def test_timeouts_are_the_deployments() -> None:
    call = provider(LoopbackHTTP())._native()
    assert call.url == "http://up/v1/responses" and isinstance(call.timeouts, Timeouts)


async def test_a_streamed_refusal_is_said_as_text_as_in_a_whole_answer() -> None:
    http = LoopbackHTTP()
    completed: dict[str, Any] = {"status": "completed", "output": [], "usage": {"input_tokens": 1}}
    http.replace = [
        ("response.refusal.delta", {"type": "response.refusal.delta", "delta": "I can't help"}),
        ("response.completed", {"type": "response.completed", "response": completed}),
    ]
    text, finish, usage = await collect(provider(http).stream(request(body())))
    assert (text.text, finish.finish_reason, usage) == ("I can't help", "stop", Usage(1, 0))
