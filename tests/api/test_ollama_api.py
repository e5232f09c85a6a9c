"""The Ollama API over HTTP on the real app (bundled model): the same answer as Chat Completions,
booked once, with the llmserve headers and the endpoint's own metrics label; errors in Ollama's
shape with the pipeline's statuses; the OpenAPI entries."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import user
from tests.api.test_surface_parity import QUESTION, openai_json, tokens_booked

OPTIONS = {"temperature": 0, "num_predict": 24}  # the parity test's SAMPLING, in Ollama's names
CHAT = {"model": "tiny-chat:latest", "messages": [user(QUESTION)], "options": OPTIONS}
GENERATE = {"model": "tiny-chat:latest", "prompt": QUESTION, "options": OPTIONS}


def ndjson(body: str) -> list[dict[str, object]]:
    assert body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def chat_whole(client: TestClient) -> str:
    response = client.post("/api/chat", json={**CHAT, "stream": False})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return str(response.json()["message"]["content"])


def chat_stream(client: TestClient) -> str:
    response = client.post("/api/chat", json=CHAT)  # Ollama streams unless told not to
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = ndjson(response.text)
    assert [line["done"] for line in lines].count(True) == 1 and lines[-1]["done"] is True
    return "".join(str(line["message"]["content"]) for line in lines)  # type: ignore[index]


def generate_whole(client: TestClient) -> str:
    response = client.post("/api/generate", json={**GENERATE, "stream": False})
    assert response.status_code == 200, response.text
    return str(response.json()["response"])


def generate_stream(client: TestClient) -> str:
    response = client.post("/api/generate", json=GENERATE)
    assert response.status_code == 200, response.text
    return "".join(str(line["response"]) for line in ndjson(response.text))


SURFACES: dict[str, Callable[[TestClient], str]] = {
    "chat whole": chat_whole,
    "chat stream": chat_stream,
    "generate whole": generate_whole,
    "generate stream": generate_stream,
}


@pytest.fixture(scope="module")
def reference(client: TestClient) -> tuple[str, dict[str, float]]:
    """The Chat Completions answer, and the tokens one such request books."""
    openai_json(client)  # the first answer may load the model
    before = tokens_booked(client)
    text = openai_json(client)
    booked = {kind: value - before.get(kind, 0.0) for kind, value in tokens_booked(client).items()}
    return text, booked


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_ollama_answers_as_chat_completions_and_books_it_once(
    client: TestClient, reference: tuple[str, dict[str, float]], surface: str
) -> None:
    text, booked_by_one = reference
    before = tokens_booked(client)
    assert SURFACES[surface](client) == text
    after = tokens_booked(client)
    assert {kind: after[kind] - before.get(kind, 0.0) for kind in after} == booked_by_one


def test_the_final_line_counts_what_was_booked(client: TestClient) -> None:
    final = ndjson(client.post("/api/chat", json=CHAT).text)[-1]
    whole = client.post("/api/chat", json={**CHAT, "stream": False}).json()
    for body in (final, whole):
        assert body["done_reason"] in ("stop", "length")
        assert isinstance(body["prompt_eval_count"], int) and body["prompt_eval_count"] > 0
        assert isinstance(body["eval_count"], int) and body["eval_count"] > 0
        assert isinstance(body["total_duration"], int) and isinstance(body["eval_duration"], int)
        assert body["load_duration"] == 0
    assert final["prompt_eval_count"] == whole["prompt_eval_count"]


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
@pytest.mark.parametrize("stream", [False, True])
def test_every_answer_says_who_answered_and_is_labelled_by_endpoint(
    client: TestClient, path: str, stream: bool
) -> None:
    body = CHAT if path == "/api/chat" else GENERATE
    response = client.post(path, json={**body, "stream": stream})
    assert response.status_code == 200, response.text
    for header in ("x-llmserve-deployment", "x-llmserve-attempts", "x-llmserve-overhead-ms", "x-request-id"):
        assert header in response.headers, header
    endpoints = {
        sample.labels["endpoint"]
        for family in text_string_to_metric_families(client.get("/metrics").text)
        if family.name == "llmserve_requests"
        for sample in family.samples
    }
    assert path in endpoints


@pytest.mark.parametrize(
    ("body", "status", "wording"),
    [
        ({**CHAT, "model": "no-such-model"}, 404, "'no-such-model' does not exist"),
        ({**CHAT, "format": "json"}, 400, 'format ("json" or a JSON schema) needs structured output'),
        ({**CHAT, "options": {"temperature": -1}}, 400, "options.temperature"),
        ({**CHAT, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role"),
        ({**CHAT, "think": True}, 400, "think is not supported"),
        ({**CHAT, "keep_alive": "a while"}, 400, "invalid duration"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_errors_are_ollamas_shape_with_the_pipelines_status(
    client: TestClient, body: dict[str, object], status: int, wording: str, stream: bool
) -> None:
    response = client.post("/api/chat", json={**body, "stream": stream})
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and wording in response.json()["error"]


def test_a_body_that_is_not_json_is_an_ollama_400(client: TestClient) -> None:
    response = client.post("/api/generate", content=b"{not json")
    assert response.status_code == 400 and "could not parse the JSON" in response.json()["error"]


def test_models_as_ollama_lists_them(client: TestClient) -> None:
    (entry,) = client.get("/api/tags").json()["models"]
    assert entry["name"] == entry["model"] == "tiny-chat:latest"
    assert entry["size"] > 0 and len(entry["digest"]) == 64
    details = entry["details"]
    assert details["format"] == "safetensors" and details["family"] == "llama"
    assert details["parameter_size"].endswith("M") and details["quantization_level"] == "F32"
    shown = client.post("/api/show", json={"model": "tiny-chat"}).json()
    assert shown["details"] == details and shown["capabilities"] == ["completion"]
    assert shown["model_info"]["llama.context_length"] == 512
    missing = client.post("/api/show", json={"model": "nope:latest"})
    assert missing.status_code == 404 and set(missing.json()) == {"error"}
    assert client.get("/api/version").json()["version"].count(".") == 2


def test_openapi_lists_the_ndjson_stream_and_ollamas_errors(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/chat", "/api/generate"):
        responses = paths[path]["post"]["responses"]
        assert set(responses["200"]["content"]) == {"application/x-ndjson", "application/json"}
        assert responses["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/OllamaError")
        assert "422" not in responses and {"400", "401", "429", "503"} <= set(responses)
    for path, method in (
        ("/api/tags", "get"),
        ("/api/ps", "get"),
        ("/api/show", "post"),
        ("/api/embed", "post"),
    ):
        assert paths[path][method]["responses"]["401"]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith("/OllamaError")


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/api/pull"), ("POST", "/api/create"), ("DELETE", "/api/delete")]
)
def test_model_management_is_refused_saying_why(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"model": "llama3"})
    assert response.status_code == 501
    assert f"{path} is not offered" in response.json()["error"] and "/api/tags" in response.json()["error"]
