"""Seed conversations that hold what other surfaces stored, and EventSource clients that continue them
(issue 14, items 12 and 25)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.api.conftest import sse_events

TOOL_EXCHANGE = [
    {"role": "user", "content": "weather?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]


def stored(client: TestClient, conversation_id: str) -> list[dict[str, str]]:
    response = client.get("/chat/get/messages/", params={"conversation_id": conversation_id})
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def test_a_conversation_holding_a_tool_result_goes_on_through_the_seed_api(client: TestClient) -> None:
    first = client.post(
        "/v1/chat/completions",
        json={"conversation_id": "tool-conv", "messages": TOOL_EXCHANGE, "max_tokens": 4},
    )
    assert first.status_code == 200, first.text
    before = len(stored(client, "tool-conv"))
    reply = client.post(
        "/chat/new/message/", json={"conversation_id": "tool-conv", "prompt": "tomorrow?", "max_tokens": 4}
    )
    assert reply.status_code == 200, reply.text
    assert ("tool", "sunny") in [(turn["role"], turn["content"]) for turn in reply.json()["history"]]
    assert len(stored(client, "tool-conv")) == before + 2  # one exchange, stored once


def test_an_event_source_learns_its_conversation_id_from_the_events(client: TestClient) -> None:
    first = client.get("/chat/stream", params={"prompt": "Hello!", "max_tokens": 4})
    events = [json.loads(e) for e in sse_events(first.text)[:-1]]
    conversation_id = events[0]["conversation_id"]
    assert (
        {e["conversation_id"] for e in events}
        == {conversation_id}
        == {first.headers["x-llmserve-conversation-id"]}
    )
    again = client.get(
        "/chat/stream", params={"prompt": "And you?", "max_tokens": 4, "conversation_id": conversation_id}
    )
    assert again.status_code == 200, again.text
    assert [m["content"] for m in stored(client, conversation_id)][::2] == ["Hello!", "And you?"]
