"""A client that leaves while its body is being read (or is dropped for a body too slow: the 408 the
HTTP layer sends) is not a server error: no 500, no traceback in the log."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmserve.app import create_app
from llmserve.config import load_settings


async def _call(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    await app(scope, receive, send)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/new/message/"])
def test_a_body_cut_short_by_a_disconnect_logs_no_unhandled_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    app = create_app(load_settings(data_dir=str(tmp_path)))
    with TestClient(app):  # runs the lifespan
        sent: list[dict[str, Any]] = []
        messages: list[Message] = [
            {"type": "http.request", "body": b'{"messages": [', "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def receive() -> Message:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(dict(message))

        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        with caplog.at_level(logging.INFO):
            anyio.run(_call, app, scope, receive, send)
    assert "unhandled error" not in caplog.text
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert all(m["status"] != 500 for m in starts), starts
