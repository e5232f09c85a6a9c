"""Issue 14, WS /chat/ws: a binary frame gets an error message and a clean close 1003, no traceback."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


def test_a_binary_frame_gets_an_error_then_close_1003(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with client.websocket_connect("/chat/ws") as ws:
        ws.send_bytes(b'{"prompt": "Hi"}')
        error = ws.receive_json()
        assert error["type"] == "error"
        assert set(error["error"]) == {"message", "type", "param", "code"}
        assert error["error"]["type"] == "invalid_request_error"
        assert "text" in error["error"]["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1003
    assert not [record for record in caplog.records if record.exc_info], "no traceback is logged"


def test_text_frames_still_work_after_an_invalid_one(client: TestClient) -> None:
    with client.websocket_connect("/chat/ws") as ws:
        ws.send_text("not json")
        assert ws.receive_json()["type"] == "error"
        ws.send_text('{"prompt": "Hi", "max_tokens": 4, "temperature": 0}')
        messages = [ws.receive_json()]
        while messages[-1]["type"] == "chunk":
            messages.append(ws.receive_json())
        assert messages[-1]["type"] == "complete", messages
