"""The seed API stores every exchange in the data dir: the history survives a restart of the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import LiveServer, running_server

pytestmark = pytest.mark.e2e


def post_message(server: LiveServer, prompt: str, conversation_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt, "max_tokens": 64, "temperature": 0}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    response = httpx.post(f"{server.url}/chat/new/message/", json=body, timeout=60)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


def stored_turns(server: LiveServer, conversation_id: str) -> list[tuple[str, str]]:
    response = httpx.get(
        f"{server.url}/chat/get/messages/", params={"conversation_id": conversation_id}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["conversation_id"] == conversation_id
    return [(m["role"], m["content"]) for m in response.json()["messages"]]


def test_history_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as server:
        first = post_message(server, "Hello!")
        conversation_id = first["conversation_id"]
        second = post_message(server, "What is 2 plus 3?", conversation_id)
        assert second["conversation_id"] == conversation_id
        assert second["status"] == 200 and len(second["message_id"]) == 32
        before = stored_turns(server, conversation_id)
    assert server.process.returncode == 0, f"the server did not stop cleanly:\n{server.log_tail()}"

    with running_server(data_dir) as restarted:
        after = stored_turns(restarted, conversation_id)
        assert (
            after
            == before
            == [
                ("user", "Hello!"),
                ("assistant", first["response"]),
                ("user", "What is 2 plus 3?"),
                ("assistant", second["response"]),
            ]
        )
        # The stored history is the next turn's context after the restart too.
        third = post_message(restarted, "Thanks!", conversation_id)
        assert [(t["role"], t["content"]) for t in third["history"]] == [
            *after,
            ("user", "Thanks!"),
            ("assistant", third["response"]),
        ]
        assert len(stored_turns(restarted, conversation_id)) == 6


def test_unknown_conversation_is_not_found(live_server: LiveServer) -> None:
    response = httpx.get(
        f"{live_server.url}/chat/get/messages/", params={"conversation_id": "0" * 32}, timeout=30
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "conversation_not_found"
