"""The pipeline's stream events → Anthropic's Messages stream.

``message_start`` (with the prompt's tokens), ``ping``, then per content block ``content_block_start``,
its ``content_block_delta``s (``text_delta`` for text, ``input_json_delta`` for a tool call's
arguments) and ``content_block_stop``; then ``message_delta`` (the stop reason and the real usage) and
``message_stop``. A failure after the first byte is Anthropic's in-band ``error`` event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from llmserve.api.errors import stream_error_event
from llmserve.api.serving import anthropic_convert as convert
from llmserve.api.serving.anthropic_errors import stream_error_payload
from llmserve.services.chat import ChatStream
from llmserve.types import Delta, FinishReason, Usage


def event(kind: str, payload: dict[str, Any]) -> bytes:
    """One SSE event as Anthropic frames it: the ``event:`` line names the type the data repeats."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class _Blocks:
    """Which content block is open, and the Anthropic index of each tool call the stream announced."""

    def __init__(self) -> None:
        self.count = 0
        self.open: int | None = None
        self.open_kind = ""
        self.tools: dict[int, int] = {}  # the pipeline's tool_calls index -> content block index

    def start(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self.stop()
        self.open, self.open_kind = self.count, kind
        self.count += 1
        start = {"type": "content_block_start", "index": self.open, "content_block": block}
        return out + event("content_block_start", start)

    def stop(self) -> bytes:
        if self.open is None:
            return b""
        index, self.open = self.open, None
        return event("content_block_stop", {"type": "content_block_stop", "index": index})

    def delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def text(self, text: str) -> bytes:
        out = b"" if self.open_kind == "text" and self.open is not None else self.start("text", _EMPTY_TEXT)
        return out + self.delta(self.count - 1, {"type": "text_delta", "text": text})

    def tool_call(self, fragment: dict[str, Any]) -> bytes:
        """An OpenAI tool-call fragment: the first of a call (it has the id or name) opens its block."""
        position = int(fragment.get("index", 0))
        function = fragment.get("function") or {}
        out = b""
        if position not in self.tools:
            block = {"type": "tool_use", "id": fragment.get("id") or "", "name": function.get("name") or ""}
            out = self.start("tool_use", {**block, "input": {}})
            self.tools[position] = self.count - 1
        if arguments := function.get("arguments"):
            out += self.delta(self.tools[position], {"type": "input_json_delta", "partial_json": arguments})
        return out


_EMPTY_TEXT: dict[str, Any] = {"type": "text", "text": ""}


def _start(stream: ChatStream, input_tokens: int) -> bytes:
    message: dict[str, Any] = {
        "id": f"msg_{stream.message_id}",
        "type": "message",
        "role": "assistant",
        "model": stream.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }
    return event("message_start", {"type": "message_start", "message": message}) + event(
        "ping", {"type": "ping"}
    )


def _end(blocks: _Blocks, finish: FinishReason | None, usage: Usage | None, input_tokens: int) -> bytes:
    delta = {"stop_reason": convert.stop_reason(finish), "stop_sequence": None}
    usage_body = convert.usage_body(usage, input_tokens)
    ending = event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_body})
    return blocks.stop() + ending + event("message_stop", {"type": "message_stop"})


def _piece(blocks: _Blocks, delta: Delta) -> bytes:
    out = blocks.text(delta.text) if delta.text else b""
    for fragment in delta.tool_calls:
        out += blocks.tool_call(fragment)
    return out


async def message_events(stream: ChatStream, input_tokens: int) -> AsyncIterator[bytes]:
    blocks = _Blocks()
    finish: FinishReason | None = None
    usage: Usage | None = None
    try:
        yield _start(stream, input_tokens)
        async for item in stream.events:
            if isinstance(item, Usage):
                usage = item
                continue
            if item.index != 0:  # n is 1 on this surface; nothing else is expected
                continue
            finish = item.finish_reason or finish
            if encoded := _piece(blocks, item):
                yield encoded
        yield _end(blocks, finish, usage, input_tokens)
    except Exception as exc:  # after the first byte the status is sent: report in-band
        yield event("error", stream_error_payload(stream_error_event(exc)))
