"""serving/ollama: Ollama's bodies → the pipeline's inputs, and the answers as the ``ollama`` client's
own types parse them (whole bodies and NDJSON lines), over the pipeline of hand-written fakes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from ollama import ChatResponse, GenerateResponse
from pydantic import ValidationError

from llmserve.api.serving import ollama
from llmserve.api.serving.ollama_stream import NdjsonReply, _ToolCallFragments, ollama_tool_calls
from llmserve.errors import InvalidRequest
from llmserve.request_context import RequestContext
from llmserve.schemas.ollama import (
    OllamaChatRequest,
    OllamaChatResponse,
    OllamaGenerateRequest,
    OllamaGenerateResponse,
    OllamaOptions,
    keep_alive_seconds,
)
from tests.unit.api.serving.conftest import service
from tests.unit.routing.fakes import FailAfter, FakeProvider, upstream_error

CHAT: dict[str, Any] = {"model": "g:latest", "messages": [{"role": "user", "content": "hi"}]}


async def ndjson(reply: object) -> list[dict[str, Any]]:
    """Every line's JSON; asserts each write is whole lines."""
    assert isinstance(reply, NdjsonReply)
    lines: list[dict[str, Any]] = []
    async for written in reply.lines:
        assert written.endswith(b"\n"), written
        lines.extend(orjson.loads(line) for line in written.splitlines())
    return lines


def test_ollama_options_map_onto_the_pipelines() -> None:
    options = ollama.generation_options(
        OllamaOptions(num_predict=7, temperature=0.2, top_k=40, top_p=0.9, stop=["\n", "###"], seed=42),
        None,
    )
    assert (options.max_tokens, options.temperature, options.top_k, options.top_p) == (7, 0.2, 40, 0.9)
    assert options.stop == ("\n", "###") and options.seed == 42 and options.clamp_max_tokens
    # Ollama's -1 (no limit) and -2 (fill the context) leave the length to the deployment; a
    # negative seed is Ollama's "random".
    for unlimited in (-1, -2, 0):
        assert ollama.generation_options(OllamaOptions(num_predict=unlimited), None).max_tokens is None
    assert ollama.generation_options(OllamaOptions(seed=-1), None).seed is None
    defaults = ollama.generation_options(None, None)
    assert (defaults.temperature, defaults.top_p, defaults.top_k, defaults.max_tokens) == (1.0, 1.0, 0, None)


def test_format_is_the_pipelines_response_format() -> None:
    assert ollama.response_format(None) is None and ollama.response_format("") is None
    assert ollama.response_format("json") == {"type": "json_object"}
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    assert ollama.response_format(schema) == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": False},
    }
    with pytest.raises(ValidationError):
        OllamaChatRequest.model_validate({**CHAT, "format": "yaml"})


def test_keep_alive_reads_seconds_and_go_durations() -> None:
    assert keep_alive_seconds(None) is None
    assert keep_alive_seconds(300) == 300.0 and keep_alive_seconds("0") == 0.0
    assert keep_alive_seconds("5m") == 300.0 and keep_alive_seconds("1h30m") == 5400.0
    assert keep_alive_seconds("-1s") == -1.0 and keep_alive_seconds("250ms") == 0.25
    with pytest.raises(ValueError, match="invalid duration"):
        keep_alive_seconds("five minutes")
    with pytest.raises(ValidationError):
        OllamaChatRequest.model_validate({**CHAT, "keep_alive": "soon"})


def test_tool_calls_and_their_results_pair_up_by_id() -> None:
    body = OllamaChatRequest.model_validate(
        {
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
                        {"function": {"name": "time", "arguments": {"city": "Rome"}}},
                    ],
                },
                {"role": "tool", "content": "13:00", "tool_name": "time"},
                {"role": "tool", "content": "sunny"},
            ]
        }
    )
    _, assistant, time_result, weather_result = ollama.chat_messages(body.messages)
    first, second = assistant.tool_calls
    assert first["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    assert first["type"] == "function" and first["id"] != second["id"]
    # A result names its tool where the client says so; otherwise it answers the next call.
    assert time_result.tool_call_id == second["id"] and time_result.name == "time"
    assert weather_result.tool_call_id == first["id"]


def test_what_the_pipeline_cannot_do_is_refused_naming_the_field() -> None:
    image = {"role": "user", "content": "what is this?", "images": ["aGVsbG8="]}
    with pytest.raises(InvalidRequest) as refused:
        ollama.chat_messages(OllamaChatRequest.model_validate({"messages": [image]}).messages)
    assert refused.value.param == "messages.0.images"
    for field, value in (
        ("suffix", "end"),
        ("template", "{{ .Prompt }}"),
        ("context", [1, 2]),
        ("think", True),
    ):
        body = OllamaGenerateRequest.model_validate({"prompt": "x", field: value})
        with pytest.raises(InvalidRequest) as refused:
            ollama._refuse_generate_fields(body)
        assert refused.value.param == field
    raw = OllamaGenerateRequest.model_validate({"prompt": "x", "raw": True, "system": "be brief"})
    with pytest.raises(InvalidRequest, match="raw mode does not support"):
        ollama._refuse_generate_fields(raw)


def test_openai_tool_calls_become_ollamas_with_object_arguments() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "not json"}},
    ]
    assert ollama_tool_calls(calls) == [
        {"function": {"name": "f", "arguments": {"a": 1}}},
        {"function": {"name": "g", "arguments": {"arguments": "not json"}}},
    ]
    fragments = _ToolCallFragments()
    fragments.add([{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}])
    fragments.add([{"index": 0, "function": {"arguments": '{"a":'}}])
    fragments.add([{"index": 0, "function": {"arguments": " 1}"}}])
    assert fragments.calls() == [{"function": {"name": "f", "arguments": {"a": 1}}}]


async def test_a_whole_chat_answer_parses_as_the_clients_chat_response() -> None:
    chat, _ = service()
    body = OllamaChatRequest.model_validate({**CHAT, "stream": False, "options": {"num_predict": 8}})
    reply = await ollama.chat(chat, body, RequestContext())
    assert not isinstance(reply, NdjsonReply)
    parsed = ChatResponse.model_validate(reply.body)
    OllamaChatResponse.model_validate(reply.body)
    assert parsed.message.content == "hello" and parsed.message.role == "assistant"
    # The name the client asked for comes back (its UI matches replies to its pick by it).
    assert parsed.model == "g:latest" and parsed.done and parsed.done_reason == "stop"
    assert (parsed.prompt_eval_count, parsed.eval_count) == (3, 2)
    assert parsed.total_duration and parsed.eval_duration and parsed.load_duration == 0
    assert reply.headers["x-llmserve-deployment"] == "hello"


async def test_a_chat_stream_is_ndjson_lines_ending_with_the_counters() -> None:
    chat, _ = service()
    reply = await ollama.chat(chat, OllamaChatRequest.model_validate(CHAT), RequestContext())
    lines = await ndjson(reply)
    parsed = [ChatResponse.model_validate(line) for line in lines]
    assert "".join(p.message.content or "" for p in parsed) == "hello!"
    assert [p.done for p in parsed] == [False, False, True]
    final = parsed[-1]
    assert final.done_reason == "stop" and (final.prompt_eval_count, final.eval_count) == (3, 2)
    assert final.total_duration is not None and final.prompt_eval_duration is not None
    assert final.eval_duration is not None and final.eval_duration > 0
    assert final.total_duration >= final.prompt_eval_duration
    assert {p.created_at for p in parsed} == {final.created_at}


async def test_generate_answers_whole_and_streamed() -> None:
    chat, _ = service()
    whole = await ollama.generate(
        chat, OllamaGenerateRequest.model_validate({"prompt": "hi", "stream": False}), RequestContext()
    )
    assert not isinstance(whole, NdjsonReply)
    parsed = GenerateResponse.model_validate(whole.body)
    OllamaGenerateResponse.model_validate(whole.body)
    assert parsed.response == "hello" and parsed.model == "g:latest"  # no model sent: the default's name
    streamed = await ollama.generate(
        chat, OllamaGenerateRequest.model_validate({"prompt": "hi", "raw": True}), RequestContext()
    )
    lines = [GenerateResponse.model_validate(line) for line in await ndjson(streamed)]
    assert "".join(line.response or "" for line in lines) == "hello!" and lines[-1].done


async def test_a_failure_after_the_first_line_is_an_error_line() -> None:
    chat, _ = service(FakeProvider("x", default=FailAfter(1, upstream_error(500))), cache=False)
    lines = await ndjson(await ollama.chat(chat, OllamaChatRequest.model_validate(CHAT), RequestContext()))
    assert lines[0]["message"]["content"] == "x"
    assert set(lines[-1]) == {"error"} and "500" in lines[-1]["error"]


async def test_an_empty_request_loads_the_model() -> None:
    chat, fixture = service()
    reply = await ollama.chat(chat, OllamaChatRequest.model_validate({"model": "g"}), RequestContext())
    assert not isinstance(reply, NdjsonReply)
    assert reply.body["done"] is True and reply.body["done_reason"] == "load"
    assert fixture.provider.calls == 0
    with pytest.raises(InvalidRequest) as refused:
        await ollama.generate(
            chat, OllamaGenerateRequest.model_validate({"model": "g", "keep_alive": 0}), RequestContext()
        )
    assert refused.value.param == "keep_alive"
