"""/v1/models, /v1/completions, /health and /ready (including the 503 while the model loads)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.api.conftest import sse_events


def test_models_list_and_retrieve(client: TestClient) -> None:
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["tiny-chat"]
    model = client.get("/v1/models/tiny-chat").json()
    assert model == {**listing["data"][0], "object": "model"}


def test_completions_raw_prompt(client: TestClient) -> None:
    response = client.post(
        "/v1/completions", json={"prompt": "Hello", "max_tokens": 5, "ignore_eos": True, "temperature": 0}
    )
    body = response.json()
    assert body["object"] == "text_completion" and body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["finish_reason"] == "length"
    echoed = client.post(
        "/v1/completions", json={"prompt": "Hello", "max_tokens": 5, "echo": True, "temperature": 0}
    )
    assert echoed.json()["choices"][0]["text"].startswith("Hello")
    streamed = client.post(
        "/v1/completions",
        json={"prompt": "Hello", "max_tokens": 5, "stream": True, "temperature": 0, "ignore_eos": True},
    )
    events = sse_events(streamed.text)
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])
    assert text == body["choices"][0]["text"]


def test_health_is_always_ok(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_is_503_while_loading_then_200(tmp_path: Path) -> None:
    with TestClient(create_app(load_settings(data_dir=str(tmp_path)))) as fresh:
        first = fresh.get("/ready")
        assert first.status_code == 503 and first.headers["retry-after"]
        assert first.json()["error"]["message"] == "Loading model"
        deadline = time.monotonic() + 60
        while (response := fresh.get("/ready")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert response.status_code == 200 and response.json()["models"] == {"tiny-chat": "ready"}


def test_history_survives_an_app_restart(tmp_path: Path) -> None:
    settings = load_settings(data_dir=str(tmp_path))
    with TestClient(create_app(settings)) as first:
        body = first.post("/chat/new/message/", json={"prompt": "hello", "max_tokens": 8}).json()
    with TestClient(create_app(settings)) as second:
        stored = second.get("/chat/get/messages/", params={"conversation_id": body["conversation_id"]}).json()
    assert [m["content"] for m in stored["messages"]] == ["hello", body["response"]]


def test_ready_reports_dependencies_and_refuses_while_redis_is_down(tmp_path: Path) -> None:
    # A port nothing listens on: the configured Redis is down, so the replica is not ready.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    settings = load_settings(data_dir=tmp_path, redis_url=f"redis://127.0.0.1:{dead_port}/0")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while (response := client.get("/ready")).json().get("error", {}).get("code") == "model_loading":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "dependency_unavailable"
        assert response.json()["dependencies"] == {"database": "ok", "redis": "down"}
        assert client.get("/health").json() == {"status": "ok"}  # liveness is unaffected


def test_ready_lists_its_dependencies(client: TestClient) -> None:
    deadline = time.monotonic() + 60
    while (response := client.get("/ready")).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert response.json()["dependencies"] == {"database": "ok", "redis": "not_configured"}
