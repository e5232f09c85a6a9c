"""How llmserve's HTTP protocol writes a response to its transport: a response with a Content-Length goes
out in one transport write; a streamed one sends its head at once. (Requests over real sockets are in
tests/e2e/api/test_http_protocol.py.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from llmserve.server.http_protocol import _HeadCoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def coalescing_cycle(*, keep_alive: bool = True) -> tuple[RequestResponseCycle, RecordingTransport]:
    """uvicorn's own request cycle, writing through the protocol's transport wrapper."""
    transport = RecordingTransport()
    scope: Any = {"type": "http", "method": "POST", "http_version": "1.1", "path": "/", "client": None}
    cycle = RequestResponseCycle(
        scope=scope,
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    cycle.transport = _HeadCoalescingTransport(transport, cycle)  # type: ignore[assignment]
    return cycle, transport


async def test_a_response_with_a_content_length_is_one_write() -> None:
    cycle, transport = coalescing_cycle(keep_alive=False)
    await cycle.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    assert transport.writes == []
    await cycle.send({"type": "http.response.body", "body": b"ok"})
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"]
    assert transport.closed and cycle.response_complete


async def test_a_streamed_response_sends_its_head_at_once() -> None:
    cycle, transport = coalescing_cycle()
    await cycle.send({"type": "http.response.start", "status": 200, "headers": []})
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
    await cycle.send({"type": "http.response.body", "body": b"data", "more_body": True})
    await cycle.send({"type": "http.response.body", "body": b""})
    assert transport.writes[1:] == [b"4\r\ndata\r\n", b"0\r\n\r\n"]


async def test_a_held_head_goes_out_before_the_connection_closes() -> None:
    """An app that fails after its start: the client gets the head, then the close, as before."""
    cycle, transport = coalescing_cycle()
    await cycle.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"9")]})
    cycle.transport.close()
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n"] and transport.closed
