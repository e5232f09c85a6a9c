"""Requests the way other HTTP stacks send them, over raw sockets, and the ``llmserve chat`` CLI.

The h2c test is the regression test for the default parser: the JDK's HttpClient offers
``Upgrade: h2c`` on every plain-HTTP request with a body, and uvicorn's stock httptools protocol drops
such a body (Kludex/uvicorn#2722), so Java clients got 400 "missing body". The server runs httptools
through llmserve's protocol class (``api/http_protocol.py``), which ignores the offer as h11 does.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import httpx
import pytest

from tests.live_server import LiveServer, free_port

pytestmark = pytest.mark.e2e

GREETING = {"messages": [{"role": "user", "content": "Hello!"}], "temperature": 0, "max_tokens": 24}


def raw_exchange(server: LiveServer, head: str, body: bytes) -> tuple[int, bytes]:
    """Sends ``head`` + ``body`` on one socket; returns the status and the (de-chunked) body."""
    parts = urlsplit(server.url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    header_blob, _, payload = received.partition(b"\r\n\r\n")
    status = int(header_blob.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in header_blob.lower():
        payload = dechunk(payload)
    return status, payload


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def expected_reply(server: LiveServer) -> str:
    body = {**GREETING, "model": server.model}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def test_body_of_a_request_offering_h2c_upgrade_arrives(live_server: LiveServer) -> None:
    body = json.dumps({**GREETING, "model": live_server.model}).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        f"Host: {urlsplit(live_server.url).netloc}\r\n"
        "Connection: close, Upgrade, HTTP2-Settings\r\n"
        "Upgrade: h2c\r\n"
        "HTTP2-Settings: AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    status, payload = raw_exchange(live_server, head, body)
    assert status == 200, payload[:300]
    assert json.loads(payload)["choices"][0]["message"]["content"] == expected_reply(live_server)


def test_chunked_request_body_arrives(live_server: LiveServer) -> None:
    body = json.dumps({**GREETING, "model": live_server.model}).encode()
    halves = (body[: len(body) // 2], body[len(body) // 2 :])
    chunked = b"".join(f"{len(half):x}\r\n".encode() + half + b"\r\n" for half in halves) + b"0\r\n\r\n"
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        f"Host: {urlsplit(live_server.url).netloc}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n"
        "\r\n"
    )
    status, payload = raw_exchange(live_server, head, chunked)
    assert status == 200, payload[:300]
    assert json.loads(payload)["choices"][0]["message"]["content"] == expected_reply(live_server)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmserve", "chat", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_chat_cli_streams_the_servers_answer(live_server: LiveServer) -> None:
    result = run_cli("Hello!", "--url", live_server.url, "--temperature", "0", "--max-tokens", "24")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected_reply(live_server).strip()


def test_chat_cli_names_an_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("Hello!", "--url", url)
    assert result.returncode == 1
    assert "error" in result.stderr.lower()
    assert "127.0.0.1" in result.stderr
