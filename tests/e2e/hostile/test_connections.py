"""Attacks before a request reaches the app: endless headers, heads and bodies trickled (issue 14,
items 4 and 7). Without the HTTP layer's limits a 64 MB header was buffered whole (16 connections:
+1.43 GB, /health stalled 10 s) and a slow client held its connection forever."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest

from tests.e2e.hostile.attack import Attacker, under_attack
from tests.e2e.hostile.conftest import READ_TIMEOUT_S
from tests.live_server import LiveServer

pytestmark = pytest.mark.e2e

GIANT_HEADER_BYTES = 64 * 1024 * 1024  # what one client sent in the report
GIANT_CLIENTS = 16
MEGABYTE = b"a" * (1024 * 1024)
SLOW_CLIENTS = 100  # per attacker thread
# A trickling connection must be gone this long after it opened: the read timeout plus scheduling.
DROPPED_WITHIN_S = READ_TIMEOUT_S + 2.0


def _address(server: LiveServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def giant_headers(server: LiveServer) -> Attacker:
    """Connects again and again, each time sending one endless header (or as much of it as the
    server takes); returns how the server answered: 431s, 200s, and closes without an answer."""
    address = _address(server)

    def attack(deadline: float) -> Counter[str]:
        answers: Counter[str] = Counter()
        while time.monotonic() < deadline:
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: attack\r\nX-Giant: ")
                try:
                    answer = _send_giant_header(sock)
                except OSError:  # reset or broken pipe: the server closed on us
                    answer = b""
                answers[answer[9:12].decode() if answer else "closed"] += 1
        return answers

    return attack


def _send_giant_header(sock: socket.socket) -> bytes:
    # Stops sending once the server has answered: the attacking machine is this one, and its CPU
    # spent pushing bytes nobody reads would be measured as the server's /health latency.
    for _ in range(GIANT_HEADER_BYTES // len(MEGABYTE)):
        sock.sendall(MEGABYTE)
        if select.select([sock], [], [], 0)[0]:
            return sock.recv(64)
    sock.sendall(b"\r\n\r\n")
    return sock.recv(64)


def test_endless_headers_are_cut_off_without_stalling_health(hostile_server: LiveServer) -> None:
    attackers = [giant_headers(hostile_server) for _ in range(GIANT_CLIENTS)]
    report = under_attack(hostile_server, "giant-headers", 8.0, attackers)
    report.check()
    answers = sum(report.results, Counter[str]())
    # Never served: cut off with 431 (or closed mid-send); 200 is what the unbounded parser answered.
    assert "200" not in answers and answers["431"] + answers["closed"] >= GIANT_CLIENTS, answers


class Trickler:
    """``SLOW_CLIENTS`` connections that each send ``prefix`` and then one byte every ``every_s``;
    a connection the server closes is replaced. Counts the connections dropped in time and those
    still open ``DROPPED_WITHIN_S`` after they were opened (held: the attack worked)."""

    def __init__(self, server: LiveServer, prefix: bytes, every_s: float) -> None:
        self.address = _address(server)
        self.prefix = prefix
        self.every_s = every_s

    def __call__(self, deadline: float) -> tuple[int, int]:
        opened: dict[socket.socket, float] = {}
        dropped = held = 0
        try:
            while time.monotonic() < deadline:
                while len(opened) < SLOW_CLIENTS:
                    opened[self._open()] = time.monotonic()
                for sock in self._closed_by_server(list(opened)):
                    del opened[sock]
                    sock.close()
                    dropped += 1
                for sock, since in list(opened.items()):
                    if time.monotonic() - since > DROPPED_WITHIN_S:
                        del opened[sock]
                        sock.close()
                        held += 1
                        continue
                    try:
                        sock.send(b"a")
                    except OSError:
                        del opened[sock]
                        sock.close()
                        dropped += 1
                time.sleep(self.every_s)
        finally:
            for sock in opened:
                sock.close()
        return dropped, held

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=10)
        sock.sendall(self.prefix)
        return sock

    @staticmethod
    def _closed_by_server(socks: list[socket.socket]) -> list[socket.socket]:
        readable, _, _ = select.select(socks, [], [], 0)
        closed = []
        for sock in readable:
            with contextlib.suppress(OSError):
                sock.recv(65536)  # a 408, or b"" once closed: either way it is over
            closed.append(sock)
        return closed


def test_trickled_heads_and_stalling_bodies_are_dropped_without_stalling_health(
    hostile_server: LiveServer,
) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: attack\r\nX-Slow: "
    body = (
        b"POST /v1/tokenize HTTP/1.1\r\nHost: attack\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000\r\n\r\n{"
    )
    attackers = [
        Trickler(hostile_server, head, 0.2),  # a byte every 0.2 s: the head never completes
        # The body timeout is an idle timeout between chunks: a byte per read timeout and a half.
        Trickler(hostile_server, body, READ_TIMEOUT_S * 1.5),
    ]
    report = under_attack(hostile_server, "slowloris", 10.0, attackers)
    report.check()
    for dropped, held in report.results:
        assert dropped >= SLOW_CLIENTS and held == 0, report.results
