"""POST /v1/chat/completions: the OpenAI chat body (or the seed's prompt/history shape) → the pipeline
→ a ``chat.completion`` body, or ``chat.completion.chunk`` events ending with ``[DONE]``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from llmserve.api.errors import stream_error_event
from llmserve.api.serving import convert
from llmserve.api.serving.replies import JsonReply, StreamReply, answer_headers, stream_headers, usage_dict
from llmserve.api.sse import DONE, sse_event
from llmserve.request_context import RequestContext
from llmserve.schemas.openai import ChatCompletionRequest
from llmserve.services.chat import ChatAsk, ChatResult, ChatService, ChatStream
from llmserve.types import Choice, Delta, Usage


def _ask(body: ChatCompletionRequest) -> ChatAsk:
    history, messages = convert.chat_messages(body)
    return ChatAsk(
        messages,
        convert.chat_options(body),
        model=body.model,
        conversation_id=body.conversation_id,
        inline_history=history,
        requirements=body.requirements,
    )


async def answer(chat: ChatService, body: ChatCompletionRequest, ctx: RequestContext) -> JsonReply:
    result = await chat.answer(_ask(body), ctx)
    return JsonReply(completion_body(result), answer_headers(result))


async def stream(chat: ChatService, body: ChatCompletionRequest, ctx: RequestContext) -> StreamReply:
    ask = _ask(body)
    started = await chat.open_stream(ask, ctx)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamReply(
        chunk_events(started, n=ask.options.n, include_usage=include_usage), stream_headers(started)
    )


def completion_body(result: ChatResult) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{result.message_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": [_choice(c) for c in result.completion.choices],
        "usage": usage_dict(result.completion.usage),
        "system_fingerprint": None,
        "conversation_id": result.conversation_id,
    }


def _choice(choice: Choice) -> dict[str, Any]:
    return {
        "index": choice.index,
        "message": {
            "role": "assistant",
            "content": choice.text if choice.text or not choice.tool_calls else None,
            "tool_calls": list(choice.tool_calls) or None,
        },
        "finish_reason": choice.finish_reason,
        "logprobs": None,
    }


class _Chunks:
    """Encodes ``chat.completion.chunk`` events. "choices" is the last key of every chunk: the rest is
    encoded once per stream, not once per token."""

    def __init__(self, stream: ChatStream, include_usage: bool) -> None:
        self.base: dict[str, Any] = {
            "id": f"chatcmpl-{stream.message_id}",
            "object": "chat.completion.chunk",
            "created": stream.created,
            "model": stream.model,
            "system_fingerprint": None,
        }
        if include_usage:
            self.base["usage"] = None
        self.include_usage = include_usage
        self._head = b"data: " + orjson.dumps(self.base)[:-1] + b',"choices":['

    def chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._head + orjson.dumps(choice) + b"]}\n\n"

    def usage(self, usage: Usage) -> bytes:
        return sse_event({**self.base, "choices": [], "usage": usage_dict(usage)})

    def delta(self, event: Delta) -> bytes:
        """The event's chunks, in one write: its content (or tool calls), then its finish."""
        out = b""
        if event.tool_calls:
            delta: dict[str, Any] = {"tool_calls": list(event.tool_calls)}
            if event.text:
                delta["content"] = event.text
            out = self.chunk(event.index, delta)
        elif event.text:
            out = self.chunk(event.index, {"content": event.text})
        if event.finish_reason is not None:
            out += self.chunk(event.index, {}, event.finish_reason)
        return out


async def chunk_events(stream: ChatStream, *, n: int, include_usage: bool) -> AsyncIterator[bytes]:
    chunks = _Chunks(stream, include_usage)
    try:
        for index in range(n):
            yield chunks.chunk(index, {"role": "assistant", "content": ""})
        async for event in stream.events:
            if isinstance(event, Usage):
                if include_usage:
                    yield chunks.usage(event)
                continue
            if encoded := chunks.delta(event):
                yield encoded
    except Exception as exc:  # after the first byte the status is sent: report in-band
        yield stream_error_event(exc)
    yield DONE
