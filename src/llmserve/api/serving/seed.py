"""The seed-native chat API (/chat/..., WS /chat/ws): the shapes the product was first described with.

``POST /chat/new/message/`` answers with the reply and the whole history; ``/chat/stream`` sends
``data: {"text", "message_id"}`` per piece (or one event with the whole text); ``POST /chat`` is the
cached integration path; the WebSocket sends ``chunk`` messages then one ``complete``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from llmserve.api.errors import stream_error_event
from llmserve.api.serving import convert
from llmserve.api.serving.replies import StreamReply, route_headers, stream_headers
from llmserve.api.sse import DONE, sse_event
from llmserve.request_context import RequestContext
from llmserve.schemas.common import SeedTurn
from llmserve.schemas.seed import (
    SeedChatRequest,
    SeedChatResponse,
    SimpleChatRequest,
    SimpleChatResponse,
    seed_time,
)
from llmserve.services.chat import ChatAsk, ChatService, ChatStream
from llmserve.types import ChatMessage, Delta, GenerationOptions


def _ask(body: SeedChatRequest) -> ChatAsk:
    """A seed body: one prompt, a stored conversation (always), the inline history for a new one."""
    return ChatAsk(
        [ChatMessage("user", body.prompt)],
        convert.seed_options(body),
        model=body.model,
        conversation_id=body.conversation_id,
        store=True,
        inline_history=convert.turns(body.history),
    )


async def new_message(
    chat: ChatService, body: SeedChatRequest, ctx: RequestContext
) -> tuple[SeedChatResponse, dict[str, str]]:
    result = await chat.answer(_ask(body), ctx)
    assert result.conversation_id is not None  # store=True always yields one
    history = [*result.context, ChatMessage("assistant", result.text)]
    reply = SeedChatResponse(
        response=result.text,
        history=[SeedTurn(role=m.role, content=m.content) for m in history],
        time=seed_time(),
        message_id=result.message_id,
        conversation_id=result.conversation_id,
    )
    return reply, route_headers(result)


async def text_stream(
    chat: ChatService, body: SeedChatRequest, ctx: RequestContext, *, incremental: bool
) -> StreamReply:
    started = await chat.open_stream(_ask(body), ctx)
    return StreamReply(text_events(started, incremental=incremental), stream_headers(started))


async def text_events(stream: ChatStream, *, incremental: bool) -> AsyncIterator[bytes]:
    """``data: {"text", "message_id"}`` per piece, or one event with the whole text. A stored stream's
    events also carry ``conversation_id``: a browser ``EventSource`` cannot read the response headers,
    and needs the id to continue the conversation."""
    ids = {"message_id": stream.message_id}
    if stream.conversation_id is not None:
        ids["conversation_id"] = stream.conversation_id
    parts: list[str] = []
    try:
        async for text in _texts(stream):
            if incremental:
                yield sse_event({"text": text, **ids})
            else:
                parts.append(text)
        if not incremental:
            yield sse_event({"text": "".join(parts), **ids})
    except Exception as exc:  # after the first byte the status is sent: report in-band
        yield stream_error_event(exc)
    yield DONE


async def _texts(stream: ChatStream) -> AsyncIterator[str]:
    """The first choice's text pieces: the seed shapes carry one answer."""
    async for event in stream.events:
        if isinstance(event, Delta) and event.index == 0 and event.text:
            yield event.text


def _simple(body: SimpleChatRequest, ctx: RequestContext) -> tuple[ChatAsk, RequestContext]:
    # The seed's /chat is the cached integration path (its answer says "cached"): it opts in to the
    # cache like a body with a ``cache`` object, whatever the sampling temperature.
    ask = ChatAsk([ChatMessage("user", body.message)], GenerationOptions(), model=body.model)
    return ask, dataclasses.replace(ctx, cache_opt_in=True)


async def simple_answer(
    chat: ChatService, body: SimpleChatRequest, ctx: RequestContext
) -> tuple[SimpleChatResponse, dict[str, str]]:
    result = await chat.answer(*_simple(body, ctx))
    reply = SimpleChatResponse(
        response=result.text,
        model_used=result.model,
        latency_ms=round(result.latency_ms, 2),
        cached=result.cache_status != "miss",
    )
    return reply, route_headers(result)


async def simple_stream(chat: ChatService, body: SimpleChatRequest, ctx: RequestContext) -> StreamReply:
    started = await chat.open_stream(*_simple(body, ctx))
    return StreamReply(text_events(started, incremental=True), stream_headers(started))


async def websocket_messages(
    chat: ChatService, body: SeedChatRequest, ctx: RequestContext
) -> AsyncIterator[dict[str, Any]]:
    """One prompt's WebSocket messages: ``chunk`` per piece, then ``complete`` with the whole text."""
    started = await chat.open_stream(_ask(body), ctx)
    parts: list[str] = []
    async for text in _texts(started):
        parts.append(text)
        yield {"type": "chunk", "content": text}
    yield {
        "type": "complete",
        "full_response": "".join(parts),
        "message_id": started.message_id,
        "conversation_id": started.conversation_id,
    }
