"""Issue 14 (outside tester): inputs that reached a 500, or a side effect, before a clear 4xx."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.test_hot_routes import requests_counted


def test_a_body_without_a_json_content_type_is_counted_under_its_route(client: TestClient) -> None:
    before = requests_counted(client, "/v1/chat/completions"), requests_counted(client, "/v1/tokenize")
    chat = b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}'
    assert client.post("/v1/chat/completions", content=chat).status_code == 200
    assert client.post("/v1/tokenize", content=b'{"prompt": "Hi"}').status_code == 200
    after = requests_counted(client, "/v1/chat/completions"), requests_counted(client, "/v1/tokenize")
    assert after == (before[0] + 1, before[1] + 1)
