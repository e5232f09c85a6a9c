"""replies: the llmserve headers every answer carries, and the JSON/SSE responses."""

from __future__ import annotations

import time

from llmserve.api.serving.replies import JsonReply, answer_headers, route_headers
from llmserve.routing.route_info import RouteInfo
from llmserve.services.chat import ChatResult
from llmserve.types import Choice, Completion, Usage


def result(
    *,
    conversation_id: str | None = None,
    similarity: float | None = None,
    headers: dict[str, str] | None = None,
) -> ChatResult:
    completion = Completion([Choice(0, "x", "stop")], Usage(1, 1))
    route = RouteInfo("g", "d#0", attempts=2, upstream_seconds=0.0)
    started = time.perf_counter()
    return ChatResult(
        "g",
        completion,
        "m" * 32,
        conversation_id,
        [],
        1.0,
        route,
        started,
        "semantic-hit",
        similarity,
        headers or {},
    )


def test_route_headers_say_who_answered_how_often_and_from_the_cache() -> None:
    headers = route_headers(result(similarity=0.91234, headers={"x-ratelimit-remaining-requests": "3"}))
    assert headers["x-llmserve-deployment"] == "d#0" and headers["x-llmserve-attempts"] == "2"
    assert (
        headers["x-llmserve-cache"] == "semantic-hit" and headers["x-llmserve-cache-similarity"] == "0.9123"
    )
    assert float(headers["x-llmserve-overhead-ms"]) >= 0
    assert headers["x-ratelimit-remaining-requests"] == "3"


def test_answer_headers_name_a_stored_conversation() -> None:
    assert "x-llmserve-conversation-id" not in answer_headers(result())
    assert answer_headers(result(conversation_id="c1"))["x-llmserve-conversation-id"] == "c1"


def test_a_json_reply_is_encoded_once_with_its_headers() -> None:
    response = JsonReply({"a": 1}, {"x-test": "1"}).response()
    assert response.body == b'{"a":1}' and response.headers["x-test"] == "1"
    assert response.media_type == "application/json"
