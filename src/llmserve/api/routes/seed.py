"""The seed-native chat API (/chat/...), shapes exactly as the product was first described."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from llmserve.api.deps import ChatServiceDep, ConversationServiceDep
from llmserve.api.serving import convert, seed
from llmserve.schemas.seed import (
    SeedChatRequest,
    SeedChatResponse,
    SeedStreamQuery,
    SeedStreamRequest,
    SimpleChatRequest,
    SimpleChatResponse,
    StoredMessageOut,
    StoredMessages,
)

router = APIRouter(prefix="/chat", tags=["seed chat"])
# The seed documents spell these paths with a trailing slash, and clients drop it as often as not: both
# spellings answer (a redirect would be an empty 307 that most HTTP clients do not follow for a POST).
# The other spelling stays out of the OpenAPI document (include_in_schema=False).
simple_router = APIRouter(tags=["seed chat"])


@router.post("/new/message/", response_model=SeedChatResponse)
@router.post("/new/message", response_model=SeedChatResponse, include_in_schema=False)
async def post_message(
    body: SeedChatRequest, chat: ChatServiceDep, request: Request, response: Response
) -> SeedChatResponse:
    reply, headers = await seed.new_message(chat, body, convert.request_context(request))
    response.headers.update(headers)
    return reply


@router.get("/get/messages/", response_model=StoredMessages)
@router.get("/get/messages", response_model=StoredMessages, include_in_schema=False)
async def get_messages(
    conversations: ConversationServiceDep,
    conversation_id: Annotated[str, Query(min_length=1, max_length=64)],
    request: Request,
) -> StoredMessages:
    """The stored messages of one of the caller's conversations (another key's: 404)."""
    stored = await conversations.messages(conversation_id, owner=convert.request_context(request).tenant)
    return StoredMessages(
        conversation_id=conversation_id,
        messages=[StoredMessageOut.model_validate(m, from_attributes=True) for m in stored],
    )


@router.post("/stream")
@router.post("/stream/", include_in_schema=False)
async def stream_chat(body: SeedStreamRequest, chat: ChatServiceDep, request: Request) -> Response:
    """SSE: ``data: {"text": piece, "message_id"}`` per piece (stream=true) or one whole-text event."""
    ctx = convert.request_context(request)
    return (await seed.text_stream(chat, body, ctx, incremental=body.stream)).response()


@router.get("/stream")
@router.get("/stream/", include_in_schema=False)
async def stream_chat_get(
    query: Annotated[SeedStreamQuery, Query()], chat: ChatServiceDep, request: Request
) -> Response:
    """The same stream for a browser ``EventSource`` (GET only): ``/chat/stream?prompt=...``."""
    body = SeedStreamRequest(**query.model_dump())
    ctx = convert.request_context(request)
    return (await seed.text_stream(chat, body, ctx, incremental=body.stream)).response()


@simple_router.post("/chat", response_model=SimpleChatResponse)
async def simple_chat(
    body: SimpleChatRequest, chat: ChatServiceDep, request: Request, response: Response
) -> SimpleChatResponse | Response:
    ctx = convert.request_context(request, priority=body.priority)
    if body.stream:
        return (await seed.simple_stream(chat, body, ctx)).response()
    reply, headers = await seed.simple_answer(chat, body, ctx)
    response.headers.update(headers)
    return reply
