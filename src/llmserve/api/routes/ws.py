"""``WS /chat/ws``: send ``{prompt, ...}``, receive ``chunk`` messages then one ``complete``."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
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
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is None:  # a binary frame: the protocol is JSON text
                await _refuse_binary(websocket)
                return
            await _answer(websocket, chat, message["text"])
    except WebSocketDisconnect:
        return


async def _refuse_binary(websocket: WebSocket) -> None:
    """An error message, then close 1003 (unsupported data), as RFC 6455 asks for a frame type refused."""
    message = "Binary frames are not supported: send each prompt as a JSON text frame"
    await websocket.send_json({"type": "error", **error_body(message, "invalid_request_error")})
    await websocket.close(code=status.WS_1003_UNSUPPORTED_DATA, reason="binary frames are not supported")


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
