"""Bodies that cost CPU to read (issue 14, item 5): chats of almost 4 MB sent to /v1/tokenize, and
to /v1/chat/completions where they end in 400 (past the bundled model's context). Tokenizing and
templating them on the event loop kept /health at p50 3.4 s (tokenize) and 8.4 s (chat)."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.e2e.hostile.attack import Attacker, under_attack
from tests.live_server import LiveServer

pytestmark = pytest.mark.e2e

CLIENTS = 3  # as in the report
# 20 messages just under the default max_message_chars (200,000): 3.9 MB, under the 4 MiB body limit.
MESSAGES = [{"role": "user", "content": ("hello world " * 16_250)[:195_000]} for _ in range(20)]
TOKENIZE_BODY = orjson.dumps({"messages": MESSAGES})
CHAT_BODY = orjson.dumps({"messages": MESSAGES, "max_tokens": 8})


def poster(server: LiveServer, path: str, body: bytes) -> Attacker:
    """Sends ``body`` again and again until the deadline; returns the statuses it got."""

    def attack(deadline: float) -> list[int]:
        statuses: list[int] = []
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=server.url, timeout=120) as client:
            while time.monotonic() < deadline:
                statuses.append(client.post(path, content=body, headers=headers).status_code)
        return statuses

    return attack


def test_big_tokenize_bodies_leave_health_answering(hostile_server: LiveServer) -> None:
    assert len(TOKENIZE_BODY) < 4 * 1024 * 1024
    attackers = [poster(hostile_server, "/v1/tokenize", TOKENIZE_BODY) for _ in range(CLIENTS)]
    report = under_attack(hostile_server, "tokenize-4MB", 10.0, attackers)
    report.check()
    statuses = [status for result in report.results for status in result]
    assert statuses and set(statuses) <= {200, 503}, statuses  # answered, or shed with Retry-After
    assert 200 in statuses


def test_big_chats_refused_with_400_leave_health_answering(hostile_server: LiveServer) -> None:
    attackers = [poster(hostile_server, "/v1/chat/completions", CHAT_BODY) for _ in range(CLIENTS)]
    report = under_attack(hostile_server, "chat-3.9MB-400", 10.0, attackers)
    report.check()
    statuses = {status for result in report.results for status in result}
    assert statuses and statuses <= {400, 503}, statuses
