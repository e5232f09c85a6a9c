"""/v1/chat/completions and /v1/completions read their own bodies (api/body.py): what a client and an
operator see must be what FastAPI's body handling gave (labels, errors, headers, docs)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import user

CHAT = {"messages": [user("Hi")], "max_tokens": 4, "temperature": 0}


def requests_counted(client: TestClient, endpoint: str) -> float:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return sum(
        sample.value
        for family in families
        if family.name == "llmserve_requests"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("endpoint") == endpoint
    )


def test_metrics_label_the_requests_with_their_route(client: TestClient) -> None:
    before = requests_counted(client, "/v1/chat/completions"), requests_counted(client, "/v1/completions")
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert client.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 4}).status_code == 200
    after = requests_counted(client, "/v1/chat/completions"), requests_counted(client, "/v1/completions")
    assert after == (before[0] + 1, before[1] + 1)


def test_a_valid_answer_and_a_service_error_both_carry_the_request_id(client: TestClient) -> None:
    ok = client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "fast-1"})
    assert ok.headers["x-request-id"] == "fast-1"
    assert ok.headers["content-type"] == "application/json"
    assert ok.json()["object"] == "chat.completion"
    missing = client.post(
        "/v1/chat/completions", json={**CHAT, "model": "no-such-model"}, headers={"x-request-id": "fast-2"}
    )
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "fast-2"
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}


def test_a_chunked_body_over_the_limit_is_413_as_an_openai_error(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while the body streams
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}]}'

    response = client.post(
        "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_bodies_fastapi_rejects_get_fastapis_400(client: TestClient) -> None:
    not_an_object = client.post("/v1/chat/completions", json=[CHAT])
    invalid = client.post("/v1/chat/completions", json={**CHAT, "temperature": "hot"})
    assert not_an_object.status_code == invalid.status_code == 400
    assert invalid.json()["error"]["param"] == "temperature"
    assert invalid.json()["error"]["message"].startswith("Invalid value for 'temperature': ")


def test_json_without_a_json_content_type_is_still_read(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", content=b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}'
    )
    assert response.status_code == 200, response.text


def test_openapi_still_documents_both_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/v1/chat/completions"] and "post" in paths["/v1/completions"]
