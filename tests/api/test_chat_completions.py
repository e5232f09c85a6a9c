"""POST /v1/chat/completions over the OpenAI protocol, with the bundled model."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.api.conftest import sse_events, user


def chat(client: TestClient, **body: object) -> dict:  # type: ignore[type-arg]
    response = client.post("/v1/chat/completions", json={"messages": [user("Hello!")], **body})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_non_stream_shape_and_usage(client: TestClient) -> None:
    body = chat(client, temperature=0, max_tokens=48)
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "tiny-chat"  # model omitted: the default group answers
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    assert choice["finish_reason"] == "stop", "the bundled model ends its replies by itself"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_framing_role_first_done_last_usage_included(client: TestClient) -> None:
    payload = {
        "messages": [user("What is your name?")],
        "stream": True,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/v1/chat/completions", json=payload) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    finish = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert finish == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])
    same = chat(client, messages=[user("What is your name?")], temperature=0)
    assert text == same["choices"][0]["message"]["content"], (
        "stream and non-stream agree under greedy decoding"
    )


def test_seed_reproduces_and_n_gives_distinct_indexed_choices(client: TestClient) -> None:
    first = chat(client, temperature=1.0, seed=42, n=2, max_tokens=24)
    again = chat(client, temperature=1.0, seed=42, n=2, max_tokens=24)
    assert [c["index"] for c in first["choices"]] == [0, 1]
    assert [c["message"]["content"] for c in first["choices"]] == [
        c["message"]["content"] for c in again["choices"]
    ]


def test_stop_sequence_cuts_the_reply(client: TestClient) -> None:
    full = chat(client, temperature=0)["choices"][0]["message"]["content"]
    cut_at = full.strip().split()[1] if len(full.split()) > 1 else full[1:3]
    stopped = chat(client, temperature=0, stop=[cut_at])["choices"][0]
    assert cut_at not in stopped["message"]["content"]
    assert full.startswith(stopped["message"]["content"])
    assert stopped["finish_reason"] == "stop"


def test_max_tokens_and_max_completion_tokens_bound_the_reply(client: TestClient) -> None:
    for field in ("max_tokens", "max_completion_tokens"):
        body = chat(client, temperature=0, ignore_eos=True, **{field: 3})
        assert body["usage"]["completion_tokens"] == 3
        assert body["choices"][0]["finish_reason"] == "length"


def test_seed_body_shape_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={
            "prompt": "你好",
            "history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}],
            "max_tokens": 2000,
            "temperature": 0,
            "top_p": 1.0,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_conversation_id_loads_history_before_and_stores_after(client: TestClient) -> None:
    first = chat(client, conversation_id="api-test-conv", temperature=0)
    second = chat(client, conversation_id="api-test-conv", messages=[user("Thanks!")], temperature=0)
    assert first["conversation_id"] == second["conversation_id"] == "api-test-conv"
    assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"], "history was prepended"
    stored = client.get("/chat/get/messages/", params={"conversation_id": "api-test-conv"}).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[1]["content"] == first["choices"][0]["message"]["content"]
    assert stored[3]["completion_tokens"] == second["usage"]["completion_tokens"]
