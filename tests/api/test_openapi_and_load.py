"""The OpenAPI document, concurrent requests on one model, and junk that must never yield a 500."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmserve.schemas.openai import ChatCompletionChunk
from tests.api.conftest import sse_events, user

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


# What each operation really answers besides its success (tests/fuzz holds the server to it).
ERRORS = {
    ("post", "/v1/chat/completions"): {"400", "401", "403", "404", "413", "429", "502", "503", "504"},
    ("post", "/chat/new/message/"): {"400", "401", "403", "404", "413", "429", "502", "503", "504"},
    ("get", "/chat/stream"): {"400", "401", "403", "404", "429", "502", "503", "504"},
    ("get", "/v1/models"): {"400", "401"},
    ("get", "/v1/models/{model_id}"): {"400", "401", "404"},
    ("post", "/v1/tokenize"): {"400", "401", "404", "413", "503"},
    ("get", "/chat/get/messages/"): {"400", "401", "404"},
    ("delete", "/v1/jobs/{job_id}"): {"400", "401", "404", "409"},
    ("post", "/v1/batches/{batch_id}/cancel"): {"400", "401", "404", "409"},
    ("post", "/admin/keys"): {"400", "401", "403", "404", "413"},
    ("get", "/ready"): {"400", "503"},
    ("get", "/health"): {"400"},  # a NUL (%00) in any URL
}


def test_the_document_lists_the_errors_really_sent_and_the_security_schemes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operations = [(path, op) for path, item in document["paths"].items() for op in item.values()]
    assert all("422" not in op["responses"] for _, op in operations)  # invalid input is a 400
    for (method, path), statuses in ERRORS.items():
        responses = document["paths"][path][method]["responses"]
        assert {status for status in responses if status >= "400"} == statuses, (method, path)
        for status in statuses:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
    for path, op in operations:
        if path not in ("/health", "/ready", "/metrics"):
            assert op["security"] == [{"bearer": []}, {"apiKey": []}], path
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}


def _event_data(document: dict[str, Any], method: str, path: str) -> list[Any]:
    media = document["paths"][path][method]["responses"]["200"]["content"]["text/event-stream"]
    done, json_data = media["schema"]["properties"]["data"]["anyOf"]
    assert done == {"const": "[DONE]"}
    assert json_data["contentMediaType"] == "application/json"
    return list(json_data["contentSchema"]["anyOf"])


def test_streams_are_described_event_by_event(client: TestClient) -> None:
    # Before: text/event-stream with a bare string schema, so a generated client had no chunk type.
    document = client.get("/openapi.json").json()
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    assert _event_data(document, "post", "/v1/chat/completions") == [
        {"$ref": "#/components/schemas/ChatCompletionChunk"},
        error,
    ]
    assert _event_data(document, "post", "/v1/completions")[0] == {
        "$ref": "#/components/schemas/CompletionChunk"
    }
    for method in ("get", "post"):
        seed = document["paths"]["/chat/stream"][method]["responses"]["200"]["content"]
        assert set(seed) == {"text/event-stream"}  # never JSON, whatever "stream" says
        assert _event_data(document, method, "/chat/stream")[0] == {
            "$ref": "#/components/schemas/SeedStreamEvent"
        }
    assert "delta" in document["components"]["schemas"]["ChatChunkChoiceOut"]["properties"]


def test_every_chunk_of_a_real_stream_is_what_the_document_says(client: TestClient) -> None:
    body = {
        "messages": [user("Hello!")],
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        events = sse_events(response.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(event, strict=True) for event in events[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and not chunks[-1].choices


def test_a_file_download_is_documented_as_bytes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    content = document["paths"]["/v1/files/{file_id}/content"]["get"]["responses"]["200"]["content"]
    assert content == {"application/jsonl": {"schema": {"type": "string", "format": "binary"}}}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_the_documented_example_of_each_hot_post_works_as_sent(client: TestClient, path: str) -> None:
    # What Swagger UI's "Try it out" sends for the endpoint.
    document = client.get("/openapi.json").json()
    example = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]
    response = client.post(path, json=example)
    assert response.status_code == 200, response.text
