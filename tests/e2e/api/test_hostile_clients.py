"""Clients that try to exhaust the server before their request reaches the app (issue 14): an endless
header, thousands of headers, a head or body sent slowly or never finished. Real uvicorn on a free
port, raw sockets to 127.0.0.1; small limits (8 KiB, 20 headers, 1 s timeouts) keep every test short."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from llmserve.config import ServerSettings
from llmserve.server.http_limits import HttpLimits
from llmserve.server.process import uvicorn_server_options
from tests.e2e.api.uvicorn_thread import serve_in_thread

pytestmark = pytest.mark.e2e

SMALL = ServerSettings(
    max_header_bytes=8 * 1024,
    max_headers=20,
    header_timeout_seconds=1.0,
    body_timeout_seconds=1.0,
    min_body_bytes_per_second=2,
)
CHUNK = b"a" * 16 * 1024


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the request body's length, once all of it arrived."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    answer = str(size).encode()
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def serve(options: dict[str, Any]) -> Iterator[int]:
    yield from serve_in_thread(echo_app, lifespan="off", **options)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    yield from serve(uvicorn_server_options(SMALL))


@pytest.fixture(scope="module")
def h11_port() -> Iterator[int]:
    yield from serve(uvicorn_server_options(SMALL.model_copy(update={"http": "h11"})))


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_until_closed(sock: socket.socket, within: float = 10) -> bytes:
    """Everything the server sends until it closes (the test fails if it does not within ``within``)."""
    sock.settimeout(within)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_the_limits_are_the_settings_and_their_defaults_are_bounded() -> None:
    assert HttpLimits.from_settings(SMALL) == HttpLimits(8 * 1024, 20, 1.0, 1.0, 2)
    defaults = ServerSettings()
    assert defaults.max_header_bytes == 64 * 1024 and defaults.max_headers == 100
    assert defaults.header_timeout_seconds == 10 and defaults.body_timeout_seconds == 30
    assert defaults.min_body_bytes_per_second == 1024


def send_endless_header(port: int) -> tuple[bytes, int]:
    """Sends one header 16 KiB at a time (4 MiB at most) until the server answers; returns the answer
    and how many bytes of the header were sent."""
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        for _ in range(256):  # at most 4 MiB
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(CHUNK)
            except OSError:
                break
            sent += len(CHUNK)
            time.sleep(0.002)
        return read_until_closed(sock), sent


def test_an_endless_header_is_answered_431_while_it_is_still_arriving(port: int) -> None:
    answer, sent = send_endless_header(port)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in answer
    assert sent <= 1024 * 1024, f"the server read {sent} bytes of one header before refusing it"


def test_a_head_too_large_in_one_piece_is_answered_431_and_closed(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_too_many_headers_are_answered_431(port: int) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % n for n in range(200))
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_a_head_within_the_limits_is_served_and_the_connection_kept(port: int) -> None:
    headers = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 300) for n in range(18))  # ~6 KiB, 19 lines
    request = b"POST / HTTP/1.1\r\nHost: x\r\n" + headers + b"Content-Length: 3\r\n\r\nabc"
    with connect(port) as sock:
        for _ in range(3):
            sock.sendall(request)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            assert answer.endswith(b"\r\n\r\n3")


def test_half_a_head_and_then_nothing_is_answered_408_and_closed(port: int) -> None:
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < 5


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    started = time.monotonic()
    with connect(port) as sock:
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < 5


def test_a_head_sent_a_byte_at_a_time_does_not_keep_the_connection(port: int) -> None:
    started = time.monotonic()
    with connect(port) as sock:
        for byte in b"GET / HTTP/1.1\r\nHost: xxxxxxxxxx"[:20]:  # one byte per 0.25 s: 5 s in all
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if select.select([sock], [], [], 0.25)[0]:
                break
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < 4


def test_a_body_that_stalls_is_answered_408_and_closed(port: int) -> None:
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < 5


def test_half_a_second_head_after_a_body_on_the_same_connection_is_answered_408(port: int) -> None:
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
        time.sleep(0.1)  # the body arrives apart from the head: the body timer runs, then must stop
        sock.sendall(b"abc")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < 4  # the header timeout (1 s), not uvicorn's keep-alive (5 s)


def test_a_slow_body_that_keeps_coming_is_served(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        for pair in (b"he", b"ll", b"o ", b"wo", b"rl"):  # 0.5 s between chunks, 4 bytes/s: both bounds met
            time.sleep(0.5)
            sock.sendall(pair)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert answer.endswith(b"\r\n\r\n10")


def test_a_body_trickled_below_the_minimum_rate_is_answered_408(port: int) -> None:
    # A byte every 0.9 s never stalls the 1 s body timeout, and used to hold the connection for as
    # long as the body lasted (a byte every 29 s against the default 30 s: forever).
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        answer = b""
        for _ in range(8):
            time.sleep(0.9)
            try:
                sock.sendall(b"x")
            except OSError:
                break
            sock.settimeout(0.01)
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < 4


def test_an_idle_keep_alive_connection_is_left_to_uvicorns_keep_alive_timeout(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        answer = read_until_closed(sock)  # uvicorn's timeout_keep_alive (5 s) closes it, no 408
    assert answer == b""


def test_h11_bounds_an_incomplete_head_by_the_same_setting(h11_port: int) -> None:
    # h11's limit is on what it buffers of an incomplete head; it answers 400 rather than 431.
    answer, sent = send_endless_header(h11_port)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert sent <= 1024 * 1024
