"""The seed-native surface in-process: new message, get messages, stream (POST and GET), WS, /chat."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from tests.api.conftest import sse_events

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_new_message_shape_and_storage(client: TestClient) -> None:
    # The seed's client posts json.dumps(...) as raw data, without a JSON content type.
    response = client.post("/chat/new/message/", content=json.dumps({"prompt": "hello", "max_tokens": 1000}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"response", "history", "status", "time", "message_id", "conversation_id"}
    assert body["status"] == 200 and body["response"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", body["time"])
    assert HEX32.match(body["message_id"])
    assert body["history"] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": body["response"]},
    ]
    stored = client.get("/chat/get/messages/", params={"conversation_id": body["conversation_id"]}).json()
    assert [(m["role"], m["content"]) for m in stored["messages"]] == [
        ("user", "hello"),
        ("assistant", body["response"]),
    ]
    assert stored["messages"][1]["id"] == body["message_id"]


def test_continuing_a_conversation_echoing_history_does_not_duplicate_it(client: TestClient) -> None:
    first = client.post(
        "/chat/new/message/", json={"prompt": "hi", "max_tokens": 32, "temperature": 0}
    ).json()
    second = client.post(
        "/chat/new/message/",
        json={
            "prompt": "谢谢",
            "max_tokens": 32,
            "temperature": 0,
            "history": first["history"],
            "conversation_id": first["conversation_id"],
        },
    ).json()
    assert [t["role"] for t in second["history"]] == ["user", "assistant", "user", "assistant"]
    stored = client.get("/chat/get/messages/", params={"conversation_id": first["conversation_id"]}).json()
    assert [m["content"] for m in stored["messages"]] == ["hi", first["response"], "谢谢", second["response"]]


def test_inline_history_seeds_a_new_conversation(client: TestClient) -> None:
    history = [{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": "Hello Ada!"}]
    body = client.post(
        "/chat/new/message/", json={"prompt": "hi", "history": history, "max_tokens": 16}
    ).json()
    stored = client.get("/chat/get/messages/", params={"conversation_id": body["conversation_id"]}).json()
    assert [m["content"] for m in stored["messages"]][:3] == ["My name is Ada.", "Hello Ada!", "hi"]


def test_stream_post_emits_seed_events_then_done(client: TestClient) -> None:
    with client.stream("POST", "/chat/stream", json={"prompt": "Hello!", "temperature": 0}) as response:
        assert response.status_code == 200
        events = sse_events(response.read().decode())
    assert events[-1] == "[DONE]" and len(events) > 2
    pieces = [json.loads(e) for e in events[:-1]]
    # The seed's shape, plus the stored conversation's id (a browser EventSource cannot read headers).
    assert all(set(p) == {"text", "message_id", "conversation_id"} for p in pieces)
    assert {p["conversation_id"] for p in pieces} == {response.headers["x-llmserve-conversation-id"]}
    assert len({p["message_id"] for p in pieces}) == 1 and HEX32.match(pieces[0]["message_id"])
    whole = client.post("/chat/stream", json={"prompt": "Hello!", "temperature": 0, "stream": False})
    single = [json.loads(e) for e in sse_events(whole.text)[:-1]]
    assert len(single) == 1 and single[0]["text"] == "".join(p["text"] for p in pieces)


def test_stream_get_for_eventsource(client: TestClient) -> None:
    response = client.get("/chat/stream", params={"prompt": "你好", "temperature": 0})
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == "[DONE]" and json.loads(events[0])["text"]
    assert client.get("/chat/stream").status_code == 400  # prompt is required


def test_websocket_chunks_then_complete(client: TestClient) -> None:
    with client.websocket_connect("/chat/ws") as ws:
        ws.send_text(json.dumps({"prompt": "Hello!", "temperature": 0}))
        chunks: list[str] = []
        while (message := ws.receive_json())["type"] == "chunk":
            chunks.append(message["content"])
        assert message["type"] == "complete" and chunks
        assert message["full_response"] == "".join(chunks)
        ws.send_text("not json")
        assert ws.receive_json()["type"] == "error"
        ws.send_text(
            json.dumps({"prompt": "hi", "max_tokens": 4, "conversation_id": message["conversation_id"]})
        )
        while ws.receive_json()["type"] == "chunk":
            pass
    stored = client.get("/chat/get/messages/", params={"conversation_id": message["conversation_id"]}).json()
    assert len(stored["messages"]) == 4


def test_simple_chat_shape(client: TestClient) -> None:
    body = client.post("/chat", json={"message": "What is 2 plus 3?", "priority": 1}).json()
    assert set(body) == {"response", "model_used", "latency_ms", "cached"}
    assert body["model_used"] == "tiny-chat" and body["latency_ms"] > 0 and body["cached"] is False
    assert client.post("/chat", json={"message": ""}).status_code == 400


def test_each_seed_path_answers_with_and_without_its_trailing_slash(client: TestClient) -> None:
    # Without the alias FastAPI answered "/chat/new/message" with an empty 307, which a POST client
    # does not follow: the message was lost with no error.
    posted = client.post("/chat/new/message", json={"prompt": "hi", "max_tokens": 2}, follow_redirects=False)
    assert posted.status_code == 200, posted.text
    conversation = posted.json()["conversation_id"]
    read = client.get("/chat/get/messages", params={"conversation_id": conversation}, follow_redirects=False)
    assert read.status_code == 200 and len(read.json()["messages"]) == 2
    streamed = client.post("/chat/stream/", json={"prompt": "hi", "max_tokens": 2}, follow_redirects=False)
    assert streamed.status_code == 200 and sse_events(streamed.text)
    got = client.get("/chat/stream/", params={"prompt": "hi", "max_tokens": 2}, follow_redirects=False)
    assert got.status_code == 200 and sse_events(got.text)


def test_the_slashless_aliases_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/chat/new/message/" in paths and "/chat/new/message" not in paths
    assert "/chat/stream" in paths and "/chat/stream/" not in paths
