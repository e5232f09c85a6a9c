"""A stored conversation keeps working once it outgrows the model's context: its oldest turns are left
out (the system prompt stays) and the answer says how many (issue 14, item 19)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import user

HEADER = "x-llmserve-history-dropped"
TURN = "Tell me about the weather in the mountains and the sea. " * 6


def test_a_conversation_past_the_context_window_is_fitted_not_refused(client: TestClient) -> None:
    conversation = "long-conversation"
    system = {"role": "system", "content": "Be brief."}
    statuses, dropped = [], []
    for turn in range(12):
        messages = [system, user(f"{turn}: {TURN}")] if turn == 0 else [user(f"{turn}: {TURN}")]
        body = {"conversation_id": conversation, "messages": messages, "max_tokens": 8, "temperature": 0}
        response = client.post("/v1/chat/completions", json=body)
        statuses.append(response.status_code)
        dropped.append(int(response.headers.get(HEADER, "0")))
    assert set(statuses) == {200}, statuses
    assert dropped[0] == 0 and dropped[-1] > 0, dropped  # it did outgrow the window
    seed = client.post(
        "/chat/new/message/", json={"conversation_id": conversation, "prompt": TURN, "max_tokens": 8}
    )
    assert seed.status_code == 200 and int(seed.headers[HEADER]) > 0
    assert seed.json()["history"][0] == system  # the system prompt is always kept


def test_a_clients_own_over_long_context_is_still_its_error(client: TestClient) -> None:
    too_long = [user(TURN) for _ in range(12)]
    response = client.post("/v1/chat/completions", json={"messages": too_long, "max_tokens": 8})
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
