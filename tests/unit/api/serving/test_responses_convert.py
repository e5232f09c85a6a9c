"""Responses API items ⇄ chat messages: every input item kind, tools, formats, and refusals that name
the offending item; output items as the openai SDK's own types parse them."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llmserve.api.serving import responses_convert as convert
from llmserve.api.serving.openai_responses import response_object
from llmserve.errors import InvalidRequest
from llmserve.schemas.responses import ResponsesRequest
from llmserve.services.responses import StoredResponse
from llmserve.types import ChatMessage, Choice, Usage


def request(**fields: Any) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"input": "hi", **fields})


def test_a_string_input_is_one_user_message_and_instructions_lead() -> None:
    items = convert.normalized_input(request(input="Hello"))
    assert [i["type"] for i in items] == ["message"] and items[0]["id"].startswith("msg_")
    assert convert.chat_messages(items, "Be terse.") == [
        ChatMessage("system", "Be terse."),
        ChatMessage("user", "Hello"),
    ]


def test_a_tool_round_trip_becomes_an_assistant_tool_call_and_a_tool_message() -> None:
    items = convert.normalized_input(
        request(
            input=[
                {"role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
                {"role": "user", "content": "weather?"},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"city":"Paris"}'},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"city":"Rome"}'},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "rain"}],
                },
            ]
        )
    )
    messages = convert.chat_messages(items)
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert [call["id"] for call in messages[2].tool_calls] == ["c1", "c2"]
    assert messages[2].tool_calls[0]["function"] == {"name": "w", "arguments": '{"city":"Paris"}'}
    assert (messages[3].tool_call_id, messages[3].content) == ("c1", "sunny")
    assert messages[4].content == "rain"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input.0.content.0",
        ),
        ({"input": [{"type": "function_call", "name": "w"}]}, "input.0"),
        ({"input": [{"type": "item_reference"}]}, "input.0"),
        ({"input": [{"type": "computer_call_output", "call_id": "x"}]}, "input.0.type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input.0"),
        ({"tools": [{"type": "web_search"}]}, "tools.0"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format"),
    ],
)
def test_what_cannot_be_translated_is_a_400_naming_it(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parsed = request(**body)
        convert.normalized_input(parsed)
        convert.options(parsed)
    assert refused.value.param == param


def test_function_tools_choice_and_json_schema_become_the_chat_calls() -> None:
    schema = {"type": "object"}
    options = convert.options(
        request(
            tools=[{"type": "function", "name": "w", "parameters": schema, "strict": True}],
            tool_choice={"type": "function", "name": "w"},
            text={"format": {"type": "json_schema", "name": "out", "schema": schema}},
            max_output_tokens=16,
        )
    )
    assert options.tools == (
        {"type": "function", "function": {"name": "w", "parameters": schema, "strict": True}},
    )
    assert options.tool_choice == {"type": "function", "function": {"name": "w"}}
    assert options.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema},
    }
    assert options.max_tokens == 16


def test_strict_numbers_refuse_strings_and_booleans() -> None:
    for value in ("64", True):
        with pytest.raises(ValueError):
            request(max_output_tokens=value)


def test_a_stored_response_is_the_sdks_response_type() -> None:
    choice = Choice(
        0, "Sure.", "stop", tool_calls=({"id": "c1", "function": {"name": "w", "arguments": "{}"}},)
    )
    stored = StoredResponse(
        id="resp_1",
        owner="t",
        model="m",
        request={"input": convert.normalized_input(request()), "instructions": "x", "metadata": {"a": "b"}},
        status="completed",
        output=convert.output_items(choice, "msg_1"),
        usage=convert.usage_of(Usage(5, 3)),
    )
    parsed = Response.model_validate(response_object(stored))
    assert parsed.output_text == "Sure." and parsed.usage is not None and parsed.usage.total_tokens == 8
    assert [item.type for item in parsed.output] == ["message", "function_call"]
    assert parsed.metadata == {"a": "b"} and parsed.instructions == "x"


def test_the_stream_events_parse_as_the_sdks_event_types() -> None:
    from llmserve.api.serving.openai_responses_stream import _Output, _Sequence
    from llmserve.types import Delta

    events = _Sequence()
    output = _Output(events, "msg_1")
    frames = [
        *output.delta(Delta(0, "Hel")),
        *output.delta(Delta(0, "lo")),
        *output.delta(
            Delta(0, "", tool_calls=({"index": 0, "id": "c1", "function": {"name": "w", "arguments": "{"}},))
        ),
        *output.delta(Delta(0, "", "tool_calls", tool_calls=({"index": 0, "function": {"arguments": "}"}},))),
        *output.close(),
    ]
    adapter: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
    parsed = [adapter.validate_json(frame.split(b"\ndata: ", 1)[1]) for frame in frames]
    assert [event.sequence_number for event in parsed] == list(range(len(parsed)))
    assert [item["type"] for item in output.items] == ["message", "function_call"]
    assert output.items[0]["content"][0]["text"] == "Hello" and output.items[1]["arguments"] == "{}"
    assert parsed[-1].type == "response.output_item.done"
