"""The seed-native chat API (/chat/...), shapes exactly as the product was first described."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from llmserve.api import convert
from llmserve.api.deps import ChatServiceDep, ConversationServiceDep
from llmserve.api.sse import sse_response
from llmserve.api.streams import route_headers, seed_text_sse, stream_headers
from llmserve.schemas.common import SeedTurn
from llmserve.schemas.seed import (
    SeedChatRequest,
    SeedChatResponse,
    SeedStreamQuery,
    SeedStreamRequest,
    SimpleChatRequest,
    SimpleChatResponse,
    StoredMessageOut,
    StoredMessages,
    seed_time,
)
from llmserve.types import ChatMessage, GenerationOptions

router = APIRouter(prefix="/chat", tags=["seed chat"])
simple_router = APIRouter(tags=["seed chat"])


@router.post("/new/message/", response_model=SeedChatResponse)
async def post_message(
    body: SeedChatRequest, chat: ChatServiceDep, request: Request, response: Response
) -> SeedChatResponse:
    result = await chat.chat(
        [ChatMessage("user", body.prompt)],
        convert.seed_options(body),
        model=body.model,
        conversation_id=body.conversation_id,
        store=True,
        inline_history=convert.turns(body.history),
        ctx=convert.request_context(request),
    )
    assert result.conversation_id is not None  # store=True always yields one
    response.headers.update(route_headers(result))
    history = [*result.context, ChatMessage("assistant", result.text)]
    return SeedChatResponse(
        response=result.text,
        history=[SeedTurn(role=m.role, content=m.content) for m in history],
        time=seed_time(),
        message_id=result.message_id,
        conversation_id=result.conversation_id,
    )


@router.get("/get/messages/", response_model=StoredMessages)
async def get_messages(
    conversations: ConversationServiceDep,
    conversation_id: Annotated[str, Query(min_length=1, max_length=64)],
) -> StoredMessages:
    stored = await conversations.messages(conversation_id)
    return StoredMessages(
        conversation_id=conversation_id,
        messages=[StoredMessageOut.model_validate(m, from_attributes=True) for m in stored],
    )


async def _stream(body: SeedStreamRequest, chat: ChatServiceDep, request: Request) -> Response:
    stream = await chat.stream_chat(
        [ChatMessage("user", body.prompt)],
        convert.seed_options(body),
        model=body.model,
        conversation_id=body.conversation_id,
        store=True,
        inline_history=convert.turns(body.history),
        ctx=convert.request_context(request),
    )
    return sse_response(seed_text_sse(stream, incremental=body.stream), stream_headers(stream))


@router.post("/stream")
async def stream_chat(body: SeedStreamRequest, chat: ChatServiceDep, request: Request) -> Response:
    """SSE: ``data: {"text": piece, "message_id"}`` per piece (stream=true) or one whole-text event."""
    return await _stream(body, chat, request)


@router.get("/stream")
async def stream_chat_get(
    query: Annotated[SeedStreamQuery, Query()], chat: ChatServiceDep, request: Request
) -> Response:
    """The same stream for a browser ``EventSource`` (GET only): ``/chat/stream?prompt=...``."""
    return await _stream(SeedStreamRequest(**query.model_dump()), chat, request)


@simple_router.post("/chat", response_model=SimpleChatResponse)
async def simple_chat(
    body: SimpleChatRequest, chat: ChatServiceDep, request: Request, response: Response
) -> SimpleChatResponse | Response:
    messages = [ChatMessage("user", body.message)]
    # The seed's /chat is the cached integration path (its answer says "cached"): it opts in to the
    # cache like a body with a ``cache`` object, whatever the sampling temperature.
    ctx = dataclasses.replace(convert.request_context(request, priority=body.priority), cache_opt_in=True)
    if body.stream:
        stream = await chat.stream_chat(messages, GenerationOptions(), model=body.model, ctx=ctx)
        return sse_response(seed_text_sse(stream, incremental=True), stream_headers(stream))
    result = await chat.chat(messages, GenerationOptions(), model=body.model, ctx=ctx)
    response.headers.update(route_headers(result))
    return SimpleChatResponse(
        response=result.text,
        model_used=result.model,
        latency_ms=round(result.latency_ms, 2),
        cached=result.cache_status != "miss",
    )
