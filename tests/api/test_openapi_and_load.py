"""The OpenAPI document, concurrent requests on one model, and junk that must never yield a 500."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import user

DOCUMENTED = {
    ("post", "/v1/chat/completions"),
    ("post", "/v1/completions"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{model_id}"),
    ("post", "/chat/new/message/"),
    ("get", "/chat/get/messages/"),
    ("post", "/chat/stream"),
    ("get", "/chat/stream"),
    ("post", "/chat"),
    ("get", "/health"),
    ("get", "/ready"),
}


def test_every_endpoint_is_in_the_openapi_document_with_a_schema(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    assert operations >= DOCUMENTED, DOCUMENTED - operations
    for method, path in DOCUMENTED:
        if method == "post":
            body = document["paths"][path][method]["requestBody"]["content"]["application/json"]
            assert "$ref" in body["schema"] or body["schema"].get("anyOf"), (method, path)
    assert client.get("/docs").status_code == 200


def test_concurrent_requests_all_complete_with_their_own_answers(client: TestClient) -> None:
    prompts = ["Hello!", "What is 2 plus 3?", "你好", "What is your name?"] * 3

    def ask(prompt: str) -> str:
        body = {"messages": [user(prompt)], "temperature": 0, "max_tokens": 32}
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["choices"][0]["message"]["content"])

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        answers = list(pool.map(ask, prompts))
    # Greedy decoding is a function of the prompt alone: interleaving must not mix requests up.
    assert answers[:4] * 3 == answers
    assert len(set(answers[:4])) == 4


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/chat/new/message/", {"prompt": 12}),
        ("post", "/chat/new/message/", {"prompt": "x", "history": "not a list"}),
        ("post", "/chat/new/message/", {"prompt": "x", "temperature": -1}),
        ("post", "/chat/new/message/", {"prompt": "x", "conversation_id": {"$ne": 1}}),
        ("post", "/chat/stream", {"prompt": "x", "stream": "sometimes"}),
        ("post", "/chat", {"message": ["x"]}),
        ("post", "/chat", {"message": "x", "priority": "urgent!!"}),
        ("post", "/v1/completions", {"prompt": [[1, 2], {"a": 1}]}),
        ("post", "/v1/completions", {"prompt": "x", "max_tokens": -5}),
        ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image"}]}]}),
        ("post", "/v1/chat/completions", {"messages": [user("x")], "seed": 2**80}),
        ("get", "/chat/get/messages/?conversation_id=", None),
        ("get", "/chat/stream?prompt=&max_tokens=abc", None),
    ],
)
def test_junk_is_a_4xx_error_object(client: TestClient, method: str, path: str, body: object) -> None:
    response = client.request(method.upper(), path, json=body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.json()["error"]["message"]


def test_the_document_lists_the_errors_really_sent_the_security_schemes_and_the_streams(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    operations = [(path, op) for path, item in document["paths"].items() for op in item.values()]
    assert all("422" not in op["responses"] for _, op in operations)  # invalid input is a 400
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, op in operations:
        if path in ("/health", "/ready", "/metrics"):
            continue
        for status in ("400", "401", "403", "413", "429", "503"):
            assert op["responses"][status]["content"]["application/json"]["schema"] == error_ref, (
                path,
                status,
            )
        assert op["security"] == [{"bearer": []}, {"apiKey": []}]
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    assert "404" in document["paths"]["/v1/models/{model_id}"]["get"]["responses"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_the_documented_example_of_each_hot_post_works_as_sent(client: TestClient, path: str) -> None:
    # What Swagger UI's "Try it out" sends for the endpoint.
    document = client.get("/openapi.json").json()
    example = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]
    response = client.post(path, json=example)
    assert response.status_code == 200, response.text
