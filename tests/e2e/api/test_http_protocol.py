"""The default HTTP parser (httptools through llmserve's protocol class) over real sockets: a request
that offers ``Upgrade: h2c`` (every JDK HttpClient request) is served with its body however it is
framed or split, the connection stays usable, and WebSocket upgrades still work.

How responses are written to the transport is in tests/unit/api/test_http_protocol.py."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from starlette.types import Receive, Scope, Send
from websockets.sync.client import connect

from llmserve.app import create_app
from llmserve.config import load_settings
from llmserve.server.http_protocol import H2cTolerantHttpToolsProtocol
from tests.e2e.api.uvicorn_thread import serve_in_thread

pytestmark = pytest.mark.e2e

H2C_OFFER = (  # what the JDK's HttpClient adds to a plain-HTTP request
    "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    "HTTP2-Settings: AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA\r\n"
)


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers an HTTP request with its method, path and body; echoes WebSocket text."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        await send({"type": "websocket.close"})
        return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = f"{scope['method']} {scope['path']} ".encode() + body
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    yield from serve_in_thread(echo_app, http=H2cTolerantHttpToolsProtocol, ws="auto", lifespan="off")


def exchange(port: int, *parts: bytes, answers: int = 1) -> list[bytes]:
    """Sends ``parts`` (a pause between them) on one connection; returns ``answers`` response bodies."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for n, part in enumerate(parts):
            if n:
                time.sleep(0.05)
            sock.sendall(part)
        received = b""
        bodies: list[bytes] = []
        while len(bodies) < answers:
            head, sep, rest = received.partition(b"\r\n\r\n")
            if sep:
                assert head.startswith(b"HTTP/1.1 200"), head
                length = int(
                    next(
                        line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
                    ).split(b":")[1]
                )
                if len(rest) >= length:
                    bodies.append(rest[:length])
                    received = rest[length:]
                    continue
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {bodies}"
            received += chunk
    return bodies


def h2c_post(body: bytes, *, framing: str | None = None) -> bytes:
    framing = framing or f"Content-Length: {len(body)}\r\n"
    return f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{H2C_OFFER}{framing}\r\n".encode() + body


def test_the_body_of_a_request_offering_h2c_arrives(port: int) -> None:
    assert exchange(port, h2c_post(b'{"model": "m"}')) == [b'POST /v1/chat/completions {"model": "m"}']


def test_a_body_sent_after_the_head_arrives(port: int) -> None:
    request = h2c_post(b'{"model": "m"}')
    head, body = request[: -len(b'{"model": "m"}')], request[-len(b'{"model": "m"}') :]
    assert exchange(port, head, body) == [b'POST /v1/chat/completions {"model": "m"}']


def test_a_chunked_body_arrives(port: int) -> None:
    chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    request = h2c_post(chunked, framing="Transfer-Encoding: chunked\r\n")
    assert exchange(port, request) == [b"POST /v1/chat/completions hello world"]


def test_the_connection_serves_the_next_requests_pipelined_or_not(port: int) -> None:
    plain = b"POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    get = f"GET /models HTTP/1.1\r\nHost: x\r\n{H2C_OFFER}\r\n".encode()
    assert exchange(port, h2c_post(b"one") + plain, get, h2c_post(b"two"), answers=4) == [
        b"POST /v1/chat/completions one",
        b"POST /next abc",
        b"GET /models ",
        b"POST /v1/chat/completions two",
    ]


def test_connection_close_next_to_the_offer_is_honoured(port: int) -> None:
    request = h2c_post(b"bye").replace(b"Connection: Upgrade,", b"Connection: close, Upgrade,")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):  # the server closes the connection after the answer
            received += chunk
    assert received.endswith(b"POST /v1/chat/completions bye")


def test_websocket_upgrades_still_work(port: int) -> None:
    with connect(f"ws://127.0.0.1:{port}/chat/ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "echo:hi"


def head_answer(port: int, path: str) -> bytes:
    """The response to ``HEAD path`` on a kept-alive connection, asserting it has no body: a GET sent
    right after it must be answered next on the same connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)  # times out (5 s) if the head is never written
            assert chunk, "connection closed before the HEAD response"
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        assert rest == b"", "a HEAD response has no body"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        while chunk := sock.recv(65536):
            rest += chunk
        assert rest.startswith(b"HTTP/1.1 "), rest[:100]
    return head


def test_a_head_request_is_answered_at_once_and_the_connection_goes_on(port: int) -> None:
    head = head_answer(port, "/health")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length: 13" in head.lower()  # the length of the body it did not send ("HEAD /health ")


@pytest.fixture(scope="module", params=["default", "h11"])
def app_port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The real app (no local model, so /ready needs only the database) under either parser."""
    settings = load_settings(
        data_dir=str(tmp_path_factory.mktemp("head-data")),
        models=[
            {"name": "remote", "provider": "openai", "model": "gpt-x", "api_base": "http://127.0.0.1:9/v1"}
        ],
    )
    http = H2cTolerantHttpToolsProtocol if request.param == "default" else "h11"
    yield from serve_in_thread(create_app(settings), start_within=30, http=http, lifespan="on")


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_uptime_monitors_can_probe_with_head(app_port: int, path: str) -> None:
    head = head_answer(app_port, path)
    assert head.startswith(b"HTTP/1.1 200"), head
