"""Issue 14 (outside tester): inputs that reached a 500, or a side effect, before a clear 4xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import sse_events
from tests.api.test_hot_routes import requests_counted

JSON = {"content-type": "application/json"}


def test_a_body_without_a_json_content_type_is_counted_under_its_route(client: TestClient) -> None:
    before = requests_counted(client, "/v1/chat/completions"), requests_counted(client, "/v1/tokenize")
    chat = b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}'
    assert client.post("/v1/chat/completions", content=chat).status_code == 200
    assert client.post("/v1/tokenize", content=b'{"prompt": "Hi"}').status_code == 200
    after = requests_counted(client, "/v1/chat/completions"), requests_counted(client, "/v1/tokenize")
    assert after == (before[0] + 1, before[1] + 1)


NUL = b"a\\u0000b"  # JSON for the text "a", NUL, "b"
LONE_SURROGATE = b"a\\ud800b"
# (route, JSON body with TEXT where the text goes, the param named in the error)
TEXT_ROUTES = [
    (
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "TEXT"}], "max_tokens": 4}',
        "messages.0.content",
    ),
    ("/v1/completions", b'{"prompt": "TEXT", "max_tokens": 4}', "prompt"),
    ("/chat/new/message/", b'{"prompt": "TEXT", "max_tokens": 4}', "prompt"),
    ("/v1/tokenize", b'{"prompt": "TEXT"}', "prompt"),
    (
        "/v1/async/chat/completions",
        b'{"messages": [{"role": "user", "content": "TEXT"}]}',
        "messages.0.content",
    ),
    ("/admin/keys", b'{"name": "TEXT"}', "name"),
]


@pytest.mark.parametrize("text", [NUL, LONE_SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize(("path", "template", "param"), TEXT_ROUTES)
def test_text_no_route_can_keep_is_a_400_naming_the_field(
    client: TestClient, path: str, template: bytes, param: str, text: bytes
) -> None:
    response = client.post(path, content=template.replace(b"TEXT", text), headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "message": response.json()["error"]["message"],
        "type": "invalid_request_error",
        "param": param,
        "code": "invalid_text",
    }
    assert param in response.json()["error"]["message"]


def test_an_async_job_with_a_lone_surrogate_is_refused_at_submit_and_never_queued(client: TestClient) -> None:
    body = b'{"messages": [{"role": "user", "content": "\\udfff"}], "max_tokens": 4}'
    response = client.post("/v1/async/chat/completions", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert "id" not in response.json()


def test_escaped_text_that_is_storable_still_passes(client: TestClient) -> None:
    # A literal backslash before "u0000" and an escaped surrogate pair (an emoji) are ordinary text.
    body = b'{"prompt": "\\\\u0000 \\ud83d\\ude00 \\u4f60\\u597d", "max_tokens": 2}'
    response = client.post("/v1/completions", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert client.post("/v1/tokenize", content=body, headers=JSON).status_code == 200


def test_a_nul_in_the_query_string_is_a_400(client: TestClient) -> None:
    response = client.get("/chat/get/messages/?conversation_id=a%00b")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_text"


@pytest.mark.parametrize("prompt", ["", [""]])
def test_an_empty_prompt_is_completed_from_the_start_token_as_openai_does(
    client: TestClient, prompt: str | list[str]
) -> None:
    response = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 3, "temperature": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["choices"]) == 1 and isinstance(body["choices"][0]["text"], str)
    assert body["usage"]["prompt_tokens"] == 1  # the start token, as OpenAI counts it
    assert body["usage"]["completion_tokens"] >= 1


def test_an_empty_prompt_streams_too(client: TestClient) -> None:
    body = {"prompt": "", "max_tokens": 3, "stream": True}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    assert all('"error"' not in event for event in events)
