"""POST /v1/completions: a raw prompt (no chat template) → a ``text_completion`` body or its events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from llmserve.api.errors import stream_error_event
from llmserve.api.serving import convert
from llmserve.api.serving.replies import JsonReply, StreamReply, route_headers, stream_headers, usage_dict
from llmserve.api.sse import DONE, sse_event
from llmserve.request_context import RequestContext
from llmserve.schemas.openai import CompletionRequest
from llmserve.services.chat import ChatResult, ChatService, ChatStream
from llmserve.types import Usage


async def answer(chat: ChatService, body: CompletionRequest, ctx: RequestContext) -> JsonReply:
    options = convert.completion_options(body)
    prompt = convert.single_prompt(body)
    result = await chat.answer_text(prompt, options, body.model, ctx)
    return JsonReply(completion_body(result, prompt if body.echo else ""), route_headers(result))


async def stream(chat: ChatService, body: CompletionRequest, ctx: RequestContext) -> StreamReply:
    options = convert.completion_options(body)
    started = await chat.open_text_stream(convert.single_prompt(body), options, body.model, ctx)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamReply(completion_events(started, include_usage=include_usage), stream_headers(started))


def completion_body(result: ChatResult, echoed: str = "") -> dict[str, Any]:
    choices = [
        {"index": c.index, "text": echoed + c.text, "finish_reason": c.finish_reason, "logprobs": None}
        for c in result.completion.choices
    ]
    return {
        "id": f"cmpl-{result.message_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": choices,
        "usage": usage_dict(result.completion.usage),
    }


async def completion_events(stream: ChatStream, *, include_usage: bool) -> AsyncIterator[bytes]:
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
    except Exception as exc:  # after the first byte the status is sent: report in-band
        yield stream_error_event(exc)
    yield DONE
