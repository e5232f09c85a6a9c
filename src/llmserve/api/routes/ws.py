"""``WS /chat/ws``: send ``{prompt, ...}``, receive ``chunk`` messages then one ``complete``."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from llmserve.api import convert
from llmserve.api.deps import services_for_websocket
from llmserve.api.errors import payload_for
from llmserve.errors import LLMServeError
from llmserve.schemas.seed import SeedChatRequest
from llmserve.services.chat import ChatService
from llmserve.types import ChatMessage, Delta

router = APIRouter(tags=["seed chat"])


@router.websocket("/chat/ws")
async def chat_websocket(websocket: WebSocket) -> None:
    """One connection, many prompts: each answered as a run of chunks ending with ``complete``."""
    chat = services_for_websocket(websocket).chat
    await websocket.accept()
    try:
        while True:
            raw = await websocket.receive_text()
            try:
                body = SeedChatRequest.model_validate_json(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                await websocket.send_json(
                    {
                        "type": "error",
                        "error": {
                            "message": f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        },
                    }
                )
                continue
            await _answer(websocket, chat, body)
    except WebSocketDisconnect:
        return


async def _answer(websocket: WebSocket, chat: ChatService, body: SeedChatRequest) -> None:
    try:
        stream = await chat.stream_chat(
            [ChatMessage("user", body.prompt)],
            convert.seed_options(body),
            model=body.model,
            conversation_id=body.conversation_id,
            store=True,
            inline_history=convert.turns(body.history),
            # The caller's key, as authenticate() stored it; timing starts at this message, not at connect.
            ctx=dataclasses.replace(convert.request_context(websocket), received_at=None),
        )
        parts: list[str] = []
        async for event in stream.events:
            if isinstance(event, Delta) and event.index == 0 and event.text:
                parts.append(event.text)
                await websocket.send_json({"type": "chunk", "content": event.text})
    except LLMServeError as exc:
        await websocket.send_json({"type": "error", **payload_for(exc)})
        return
    await websocket.send_json(
        {
            "type": "complete",
            "full_response": "".join(parts),
            "message_id": stream.message_id,
            "conversation_id": stream.conversation_id,
        }
    )
