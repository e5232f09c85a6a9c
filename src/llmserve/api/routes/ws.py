"""``WS /chat/ws``: send ``{prompt, ...}``, receive ``chunk`` messages then one ``complete``."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from llmserve.api.deps import services_for_websocket
from llmserve.api.errors import payload_for
from llmserve.api.serving import convert, seed
from llmserve.errors import LLMServeError, error_body
from llmserve.schemas.seed import SeedChatRequest
from llmserve.services.chat import ChatService

router = APIRouter(tags=["seed chat"])


@router.websocket("/chat/ws")
async def chat_websocket(websocket: WebSocket) -> None:
    """One connection, many prompts: each answered as a run of chunks ending with ``complete``."""
    chat = services_for_websocket(websocket).chat
    await websocket.accept()
    try:
        while True:
            await _answer(websocket, chat, await websocket.receive_text())
    except WebSocketDisconnect:
        return


async def _answer(websocket: WebSocket, chat: ChatService, raw: str) -> None:
    try:
        body = SeedChatRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        invalid = f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}"
        await websocket.send_json({"type": "error", **error_body(invalid, "invalid_request_error")})
        return
    # The caller's key, as authenticate() stored it; timing starts at this message, not at connect.
    ctx = dataclasses.replace(convert.request_context(websocket), received_at=None)
    try:
        async for message in seed.websocket_messages(chat, body, ctx):
            await websocket.send_json(message)
    except LLMServeError as exc:
        await websocket.send_json({"type": "error", **payload_for(exc)})
