"""Stream bodies: ChatService events → SSE bytes in the OpenAI and seed-native formats.

Chunks are built as plain dicts and encoded with orjson: this runs once per token on the hot path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from llmserve.api.errors import stream_error_event
from llmserve.api.sse import DONE, sse_event
from llmserve.services.chat import ChatResult, ChatStream, gateway_overhead_ms
from llmserve.types import Delta, Usage


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def openai_chat_sse(stream: ChatStream, *, n: int, include_usage: bool) -> AsyncIterator[bytes]:
    base: dict[str, Any] = {
        "id": f"chatcmpl-{stream.message_id}",
        "object": "chat.completion.chunk",
        "created": stream.created,
        "model": stream.model,
        "system_fingerprint": None,
    }
    if include_usage:
        base["usage"] = None
    # "choices" is the last key of every chunk: the rest is encoded once per stream, not per token.
    head = b"data: " + orjson.dumps(base)[:-1] + b',"choices":['

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return head + orjson.dumps(choice) + b"]}\n\n"

    try:
        for index in range(n):
            yield chunk(index, {"role": "assistant", "content": ""})
        async for event in stream.events:
            if isinstance(event, Usage):
                if include_usage:
                    yield sse_event({**base, "choices": [], "usage": usage_dict(event)})
                continue
            if event.tool_calls:
                delta: dict[str, Any] = {"tool_calls": list(event.tool_calls)}
                if event.text:
                    delta["content"] = event.text
                yield chunk(event.index, delta)
            elif event.text:
                yield chunk(event.index, {"content": event.text})
            if event.finish_reason is not None:
                yield chunk(event.index, {}, event.finish_reason)
    except Exception as exc:  # after the first byte the status is sent: report in-band
        yield stream_error_event(exc)
    yield DONE


async def openai_completion_sse(stream: ChatStream, *, include_usage: bool) -> AsyncIterator[bytes]:
    base: dict[str, Any] = {
        "id": f"cmpl-{stream.message_id}",
        "object": "text_completion",
        "created": stream.created,
        "model": stream.model,
    }
    if include_usage:
        base["usage"] = None
    try:
        async for event in stream.events:
            if isinstance(event, Usage):
                if include_usage:
                    yield sse_event({**base, "choices": [], "usage": usage_dict(event)})
                continue
            choice = {
                "index": event.index,
                "text": event.text,
                "logprobs": None,
                "finish_reason": event.finish_reason,
            }
            yield sse_event({**base, "choices": [choice]})
    except Exception as exc:
        yield stream_error_event(exc)
    yield DONE


async def seed_text_sse(stream: ChatStream, *, incremental: bool) -> AsyncIterator[bytes]:
    """``data: {"text", "message_id"}`` per piece, or one event with the whole text."""
    parts: list[str] = []
    try:
        async for event in stream.events:
            if not isinstance(event, Delta) or event.index != 0 or not event.text:
                continue
            if incremental:
                yield sse_event({"text": event.text, "message_id": stream.message_id})
            else:
                parts.append(event.text)
        if not incremental:
            yield sse_event({"text": "".join(parts), "message_id": stream.message_id})
    except Exception as exc:
        yield stream_error_event(exc)
    yield DONE


def route_headers(answer: ChatResult | ChatStream) -> dict[str, str]:
    """Which deployment answered, after how many calls, what llmserve itself added (ms), and whether
    the cache answered."""
    headers = {
        "x-llmserve-deployment": answer.route.deployment,
        "x-llmserve-attempts": str(answer.route.attempts),
        "x-llmserve-overhead-ms": f"{gateway_overhead_ms(answer.route, answer.started):.2f}",
        "x-llmserve-cache": answer.cache_status,
    }
    if answer.cache_similarity is not None:
        headers["x-llmserve-cache-similarity"] = f"{answer.cache_similarity:.4f}"
    headers.update(answer.headers)  # x-ratelimit-* when the caller has limits
    return headers


def stream_headers(stream: ChatStream) -> dict[str, str]:
    headers = {
        "x-llmserve-model": stream.model,
        "x-llmserve-message-id": stream.message_id,
        **route_headers(stream),
    }
    if stream.conversation_id:
        headers["x-llmserve-conversation-id"] = stream.conversation_id
    return headers
