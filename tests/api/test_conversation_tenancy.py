"""Conversations belong to the key that started them: another key cannot read, continue or append to
them through any surface, and learns nothing it could not learn from a missing id (issue 14, item 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.api.conftest import sse_events, user

MASTER = "master-key-for-tenancy-tests-0123456789"
SAMPLING = {"temperature": 0, "max_tokens": 8}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("tenancy")
    with TestClient(create_app(load_settings(data_dir=str(data_dir), master_key=MASTER))) as client:
        yield client


def new_key(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/admin/keys", json={"name": name}, headers={"authorization": f"Bearer {MASTER}"})
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['key']}"}


@pytest.fixture(scope="module")
def owner(secured: TestClient) -> dict[str, str]:
    return new_key(secured, "owner")


@pytest.fixture(scope="module")
def intruder(secured: TestClient) -> dict[str, str]:
    return new_key(secured, "intruder")


@pytest.fixture(scope="module")
def conversation(secured: TestClient, owner: dict[str, str]) -> str:
    """A conversation the owner started, holding one exchange about a secret."""
    started = secured.post(
        "/chat/new/message/", json={"prompt": "my secret is 1234", **SAMPLING}, headers=owner
    )
    assert started.status_code == 200, started.text
    conversation_id: str = started.json()["conversation_id"]
    return conversation_id


def stored_texts(client: TestClient, conversation_id: str, headers: dict[str, str]) -> list[str]:
    response = client.get("/chat/get/messages/", params={"conversation_id": conversation_id}, headers=headers)
    assert response.status_code == 200, response.text
    return [m["content"] for m in response.json()["messages"]]


def test_the_owner_reads_its_conversation(
    secured: TestClient, owner: dict[str, str], conversation: str
) -> None:
    assert stored_texts(secured, conversation, owner)[0] == "my secret is 1234"


def test_another_key_cannot_read_it(secured: TestClient, intruder: dict[str, str], conversation: str) -> None:
    response = secured.get("/chat/get/messages/", params={"conversation_id": conversation}, headers=intruder)
    missing = secured.get("/chat/get/messages/", params={"conversation_id": "no-such-id"}, headers=intruder)
    assert response.status_code == missing.status_code == 404
    assert response.json()["error"]["type"] == missing.json()["error"]["type"]
    assert "1234" not in response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/new/message/", {"prompt": "what is my secret?"}),
        ("/chat/stream", {"prompt": "what is my secret?", "stream": True}),
        ("/v1/chat/completions", {"messages": [user("what is my secret?")]}),
        ("/v1/chat/completions", {"messages": [user("what is my secret?")], "stream": True}),
    ],
)
def test_another_key_cannot_continue_or_append_to_it(
    secured: TestClient,
    owner: dict[str, str],
    intruder: dict[str, str],
    conversation: str,
    path: str,
    body: dict[str, object],
) -> None:
    before = stored_texts(secured, conversation, owner)
    response = secured.post(
        path, json={**body, **SAMPLING, "conversation_id": conversation}, headers=intruder
    )
    assert response.status_code == 404, response.text
    assert "1234" not in response.text
    assert stored_texts(secured, conversation, owner) == before  # nothing appended


def test_another_key_cannot_use_it_over_the_websocket(
    secured: TestClient, owner: dict[str, str], intruder: dict[str, str], conversation: str
) -> None:
    before = stored_texts(secured, conversation, owner)
    with secured.websocket_connect("/chat/ws", headers=intruder) as ws:
        ws.send_text(
            json.dumps({"prompt": "what is my secret?", "conversation_id": conversation, **SAMPLING})
        )
        message = ws.receive_json()
    assert message["type"] == "error" and "1234" not in json.dumps(message)
    assert stored_texts(secured, conversation, owner) == before


def test_the_owner_continues_it_on_every_surface(
    secured: TestClient, owner: dict[str, str], conversation: str
) -> None:
    before = len(stored_texts(secured, conversation, owner))
    body = {"messages": [user("and now?")], **SAMPLING, "conversation_id": conversation}
    assert secured.post("/v1/chat/completions", json=body, headers=owner).status_code == 200
    streamed = secured.post(
        "/chat/stream", json={"prompt": "again", "conversation_id": conversation, **SAMPLING}, headers=owner
    )
    assert sse_events(streamed.text)[-1] == "[DONE]"
    assert len(stored_texts(secured, conversation, owner)) == before + 4  # two exchanges


def test_a_key_cannot_claim_an_id_another_key_already_uses(
    secured: TestClient, intruder: dict[str, str], owner: dict[str, str]
) -> None:
    claimed = secured.post(
        "/chat/new/message/",
        json={"prompt": "mine", "conversation_id": "shared-name", **SAMPLING},
        headers=owner,
    )
    assert claimed.status_code == 200
    stolen = secured.post(
        "/chat/new/message/",
        json={"prompt": "no, mine", "conversation_id": "shared-name", **SAMPLING},
        headers=intruder,
    )
    assert stolen.status_code == 404
    assert stored_texts(secured, "shared-name", owner)[0] == "mine"
