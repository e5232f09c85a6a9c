"""Ollama's answers on the wire: the whole ``/api/chat`` / ``/api/generate`` body, and the NDJSON lines of
a stream (one JSON object a line, the last with ``done: true``, ``done_reason`` and the counters).

Durations are nanoseconds, as Ollama sends them. A stream measures its own: ``prompt_eval_duration``
is the time to the first token (queueing, prompt and failover included), ``eval_duration`` the rest.
A whole answer cannot split the model's time that way, so it sends ``eval_duration`` (the time spent
in the model or upstream) and leaves ``prompt_eval_duration`` out rather than invent one.
``load_duration`` is 0: a model is loaded before it answers, and a load is not billed to a request
(``/api/generate`` with no prompt reports a real one).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import StreamingResponse

from llmserve.api.errors import stream_error_event
from llmserve.services.chat import ChatResult, ChatStream
from llmserve.types import Usage

NDJSON = "application/x-ndjson"
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_NS = 1_000_000_000
_SSE_PREFIX = len(b"data: ")


@dataclass(frozen=True)
class NdjsonReply:
    lines: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> StreamingResponse:
        return StreamingResponse(self.lines, media_type=NDJSON, headers={**_STREAM_HEADERS, **self.headers})


def created_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def done_reason(finish: str | None) -> str:
    # Ollama knows stop, length, load and unload; a tool call or a cancelled row ends as "stop".
    return "length" if finish == "length" else "stop"


def durations(total_s: float, eval_s: float, prompt_s: float | None = None) -> dict[str, int]:
    out = {"total_duration": int(total_s * _NS), "load_duration": 0}
    if prompt_s is not None:
        out["prompt_eval_duration"] = int(prompt_s * _NS)
    # Never 0: clients divide eval_count by it for their tokens per second.
    out["eval_duration"] = max(1, int(eval_s * _NS))
    return out


def counts(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage(0, 0)
    return {"prompt_eval_count": usage.prompt_tokens, "eval_count": usage.completion_tokens}


def ollama_tool_calls(calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls (arguments as a JSON string) → Ollama's (arguments as an object)."""
    out = []
    for call in calls:
        function = call.get("function") or {}
        out.append({"function": {"name": function.get("name", ""), "arguments": _arguments(function)}})
    return out


def _arguments(function: dict[str, Any]) -> dict[str, Any]:
    raw = function.get("arguments")
    if isinstance(raw, dict):
        return raw
    try:
        parsed = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        parsed = None
    # Ollama's clients type arguments as an object; a model's text that is not one is kept whole.
    return parsed if isinstance(parsed, dict) else {"arguments": raw}


def _whole_stats(result: ChatResult) -> dict[str, Any]:
    choice = result.completion.choices[0]
    total = result.latency_ms / 1000
    return {
        "done": True,
        "done_reason": done_reason(choice.finish_reason),
        **durations(total, result.route.upstream_seconds or total),
        **counts(result.completion.usage),
    }


def chat_body(result: ChatResult, model: str) -> dict[str, Any]:
    choice = result.completion.choices[0]
    message: dict[str, Any] = {"role": "assistant", "content": choice.text}
    if choice.tool_calls:
        message["tool_calls"] = ollama_tool_calls(choice.tool_calls)
    return {"model": model, "created_at": created_at(), "message": message, **_whole_stats(result)}


def generate_body(result: ChatResult, model: str) -> dict[str, Any]:
    return {"model": model, "created_at": created_at(), "response": result.text, **_whole_stats(result)}


def error_line(exc: BaseException) -> bytes:
    """After the first line the status is sent: Ollama's clients read ``{"error": ...}`` in-band.
    Built from the SSE error event so the failure is logged exactly as the other surfaces log it."""
    payload = orjson.loads(stream_error_event(exc)[_SSE_PREFIX:])
    return orjson.dumps({"error": payload["error"]["message"]}) + b"\n"


class _ToolCallFragments:
    """OpenAI stream fragments merged by index: Ollama sends each call whole, once it is complete."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, fragments: Sequence[dict[str, Any]]) -> None:
        for fragment in fragments:
            call = self._calls.setdefault(int(fragment.get("index", 0)), {"name": "", "arguments": ""})
            function = fragment.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""

    def calls(self) -> list[dict[str, Any]]:
        return ollama_tool_calls([{"function": self._calls[i]} for i in sorted(self._calls)])


class Lines:
    """Encodes one stream's lines. The head (model, created_at) is encoded once per stream."""

    def __init__(self, model: str, *, chat: bool) -> None:
        self.model = model
        self.chat = chat
        self.created_at = created_at()
        self._head = orjson.dumps({"model": model, "created_at": self.created_at})[:-1]
        self._open = b',"message":{"role":"assistant","content":' if chat else b',"response":'
        self._close = b'},"done":false}\n' if chat else b',"done":false}\n'

    def piece(self, text: str) -> bytes:
        return self._head + self._open + orjson.dumps(text) + self._close

    def tool_calls(self, calls: list[dict[str, Any]]) -> bytes:
        message = {"role": "assistant", "content": "", "tool_calls": calls}
        return self._line({"message": message, "done": False})

    def final(self, stats: dict[str, Any]) -> bytes:
        empty = {"message": {"role": "assistant", "content": ""}} if self.chat else {"response": ""}
        return self._line({**empty, "done": True, **stats})

    def _line(self, fields: dict[str, Any]) -> bytes:
        return orjson.dumps({"model": self.model, "created_at": self.created_at, **fields}) + b"\n"


async def stream_lines(stream: ChatStream, lines: Lines) -> AsyncIterator[bytes]:
    first_at: float | None = None
    usage: Usage | None = None
    finish: str | None = None
    tool_calls = _ToolCallFragments()
    try:
        async for event in stream.events:
            if isinstance(event, Usage):
                usage = event
                continue
            first_at = first_at or time.perf_counter()
            finish = event.finish_reason or finish
            if event.tool_calls:
                tool_calls.add(event.tool_calls)
            if event.text:
                yield lines.piece(event.text)
        if calls := tool_calls.calls():
            yield lines.tool_calls(calls)
        yield lines.final(_stream_stats(stream.started, first_at, finish, usage))
    except Exception as exc:  # after the first byte the status is sent: report in-band
        yield error_line(exc)


def _stream_stats(
    started: float, first_at: float | None, finish: str | None, usage: Usage | None
) -> dict[str, Any]:
    now = time.perf_counter()
    first_at = first_at or now
    return {
        "done_reason": done_reason(finish),
        **durations(now - started, now - first_at, first_at - started),
        **counts(usage),
    }
