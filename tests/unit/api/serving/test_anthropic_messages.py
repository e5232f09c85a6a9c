"""Anthropic Messages translation: the body → the pipeline's messages and options, answers and
stream events back, checked against the official ``anthropic`` SDK's own types and accumulator."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message

from llmserve.api.serving import anthropic_convert as convert
from llmserve.api.serving import anthropic_errors, anthropic_stream
from llmserve.api.serving.anthropic_messages import message_body
from llmserve.errors import InvalidRequest, UpstreamError
from llmserve.routing.route_info import RouteInfo
from llmserve.schemas.anthropic import AnthropicMessageResponse, AnthropicMessagesRequest
from llmserve.services.chat import ChatResult, ChatStream
from llmserve.types import ChatMessage, Choice, Completion, Delta, StreamEvent, Usage

TOOLS = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]


def request(**fields: Any) -> AnthropicMessagesRequest:
    body = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **fields}
    return AnthropicMessagesRequest.model_validate(body)


def test_system_blocks_and_text_blocks_become_plain_messages() -> None:
    body = request(
        system=[
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "Be kind.", "cache_control": {}},
        ],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ],
    )
    assert convert.chat_messages(body) == [
        ChatMessage("system", "Be brief.\n\nBe kind."),
        ChatMessage("user", "a\nb"),
    ]
    assert convert.untranslatable(body) is None


def test_a_tool_round_trip_becomes_openai_tool_calls_and_tool_messages_in_order() -> None:
    body = request(
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "sunny"}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    )
    messages = convert.chat_messages(body)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "user"]
    call = messages[1].tool_calls[0]
    assert call["id"] == "toolu_1" and orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2] == ChatMessage("tool", "sunny", tool_call_id="toolu_1")
    options = convert.options(body)
    assert options.tools[0]["function"]["name"] == "get_weather"
    assert options.tools[0]["function"]["parameters"] == {"type": "object"}
    assert options.tool_choice == {"type": "function", "function": {"name": "get_weather"}}


def test_a_failed_tool_result_says_so_to_a_model_that_has_no_error_flag() -> None:
    body = request(
        messages=[
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}],
            }
        ]
    )
    assert convert.chat_messages(body) == [ChatMessage("tool", "Error: boom", tool_call_id="t")]


@pytest.mark.parametrize(("anthropic", "openai"), [("auto", "auto"), ("any", "required"), ("none", "none")])
def test_tool_choices_map_to_openai_names(anthropic: str, openai: str) -> None:
    assert convert.options(request(tools=TOOLS, tool_choice={"type": anthropic})).tool_choice == openai


def test_sampling_fields_keep_anthropic_defaults() -> None:
    options = convert.options(request(stop_sequences=["END"], top_k=5, temperature=0.2, top_p=0.9))
    assert (options.max_tokens, options.temperature, options.top_p, options.top_k) == (16, 0.2, 0.9, 5)
    assert options.stop == ("END",)
    default = convert.options(request())
    assert (default.temperature, default.top_p, default.top_k, default.tools) == (1.0, 1.0, 0, ())


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (
            [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}],
            "messages.0.content.0",
        ),
        (
            [{"type": "text", "text": "x"}, {"type": "thinking", "thinking": "hm", "signature": "s"}],
            "messages.0.content.1",
        ),
    ],
)
def test_content_only_an_anthropic_upstream_takes_is_located(content: list[Any], where: str) -> None:
    assert convert.untranslatable(request(messages=[{"role": "user", "content": content}])) == where


def test_a_server_tool_is_not_translatable() -> None:
    body = request(tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert convert.untranslatable(body) == "tools.0"


def test_a_named_tool_choice_without_a_name_is_a_400() -> None:
    with pytest.raises(InvalidRequest):
        convert.options(request(tools=TOOLS, tool_choice={"type": "tool"}))


def test_max_tokens_is_required_and_temperature_is_anthropics_range() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        AnthropicMessagesRequest.model_validate(
            {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        )
    with pytest.raises(ValueError, match="temperature"):
        request(temperature=1.5)


def _result(choice: Choice) -> ChatResult:
    return ChatResult(
        "g", Completion([choice], Usage(11, 4)), "abc", None, [], 1.0, RouteInfo("g", "d1", attempts=1), 0.0
    )


def test_an_answer_with_text_and_a_tool_call_is_a_message_the_sdk_parses() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    body = message_body(_result(Choice(0, "Checking.", "tool_calls", tool_calls=(call,))))
    message = Message.model_validate(body)
    AnthropicMessageResponse.model_validate(body)
    assert message.stop_reason == "tool_use" and message.id == "msg_abc"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 4)


def test_an_anthropic_upstreams_own_message_is_answered_under_our_id() -> None:
    upstream = {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "x"}],
        "stop_reason": "stop_sequence",
        "stop_sequence": "END",
        "usage": {"input_tokens": 11, "output_tokens": 4, "cache_read_input_tokens": 3},
    }
    result = _result(Choice(0, "x", "stop"))
    result.completion = Completion(result.completion.choices, result.completion.usage, native=upstream)
    message = Message.model_validate(message_body(result))
    assert (message.id, message.model, message.stop_sequence) == ("msg_abc", "g", "END")
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.usage.cache_read_input_tokens == 3


@pytest.mark.parametrize(
    ("finish", "reason"), [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")]
)
def test_finish_reasons_become_stop_reasons(finish: Any, reason: str) -> None:
    assert message_body(_result(Choice(0, "x", finish)))["stop_reason"] == reason


def test_tool_arguments_that_are_not_json_are_an_upstream_fault() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    with pytest.raises(UpstreamError):
        message_body(_result(Choice(0, "", "tool_calls", tool_calls=(call,))))


def _stream(events: Sequence[StreamEvent | Exception]) -> ChatStream:
    async def produce() -> AsyncIterator[StreamEvent]:
        for item in events:
            if isinstance(item, Exception):
                raise item
            yield item

    return ChatStream("g", "abc", None, int(time.time()), produce(), RouteInfo("g", "d1"), 0.0)


async def _events(stream: ChatStream, input_tokens: int = 9) -> list[tuple[str, dict[str, Any]]]:
    out = []
    async for written in anthropic_stream.message_events(stream, input_tokens):
        for frame in written[:-2].split(b"\n\n"):
            head, data = frame.split(b"\n")
            assert head.startswith(b"event: ") and data.startswith(b"data: "), frame
            payload = orjson.loads(data[len(b"data: ") :])
            assert head[len(b"event: ") :].decode() == payload["type"]
            out.append((payload["type"], payload))
    return out


def _accumulated(events: list[tuple[str, dict[str, Any]]]) -> Any:
    snapshot = None
    buffers: dict[int, bytes] = {}
    for kind, payload in events:
        if kind != "ping":
            snapshot = accumulate_event(event=payload, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    return snapshot


async def test_a_text_stream_is_anthropics_event_sequence_with_real_usage() -> None:
    events = await _events(_stream([Delta(0, "Hel"), Delta(0, "lo"), Delta(0, "", "stop"), Usage(9, 2)]))
    assert [kind for kind, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["usage"]["input_tokens"] == 9
    message = _accumulated(events)
    assert message.content[0].text == "Hello" and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 2)


async def test_streamed_tool_calls_become_tool_use_blocks_with_input_json_deltas() -> None:
    fragments: list[StreamEvent | Exception] = [
        Delta(0, "Let me check."),
        Delta(
            0,
            "",
            tool_calls=(
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}},
            ),
        ),
        Delta(0, "", tool_calls=({"index": 0, "function": {"arguments": '{"q": '}},)),
        Delta(0, "", tool_calls=({"index": 0, "function": {"arguments": '"x"}'}},)),
        Delta(
            0, "", tool_calls=({"index": 1, "id": "call_2", "function": {"name": "g", "arguments": "{}"}},)
        ),
        Delta(0, "", "tool_calls"),
        Usage(20, 7),
    ]
    events = await _events(_stream(fragments), input_tokens=18)
    starts = [p["content_block"]["type"] for kind, p in events if kind == "content_block_start"]
    assert starts == ["text", "tool_use", "tool_use"]
    assert [p["index"] for kind, p in events if kind == "content_block_stop"] == [0, 1, 2]
    message = _accumulated(events)
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].id == "call_1" and message.content[1].input == {"q": "x"}
    assert message.content[2].name == "g" and message.content[2].input == {}
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 20  # message_delta's real count replaces message_start's


async def test_a_failure_after_the_first_byte_is_an_anthropic_error_event() -> None:
    failure = UpstreamError("d1: overloaded", kind="status", retryable=True, upstream_status=503)
    events = await _events(_stream([Delta(0, "par"), failure]))
    kind, payload = events[-1]
    assert kind == "error"
    assert payload["error"]["type"] == "api_error" and "overloaded" in payload["error"]["message"]


@pytest.mark.parametrize(
    ("status", "anthropic"),
    [
        (400, (400, "invalid_request_error")),
        (401, (401, "authentication_error")),
        (404, (404, "not_found_error")),
        (413, (413, "request_too_large")),
        (429, (429, "rate_limit_error")),
        (502, (500, "api_error")),
        (503, (529, "overloaded_error")),
        (504, (504, "timeout_error")),
    ],
)
def test_statuses_are_anthropics(status: int, anthropic: tuple[int, str]) -> None:
    assert anthropic_errors.anthropic_status(status) == anthropic
