"""A client that goes away mid-stream stops its generation within a second.

What shows it from outside: ``GET /ready``'s ``in_flight`` drops back (what an operator draining a
replica watches), which the engine reports only once the scheduler has let go of the row. The
engine batches concurrent requests, so a request sent after the client left is answered promptly
either way; that check only guards against the abandoned row blocking the model. A long reply needs
``ignore_eos``, which only the OpenAI endpoints take; the seed streams end where tiny-chat ends its
short replies.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.live_server import LiveServer, sse_data
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

MAX_TOKENS = 480  # with the prompt, within tiny-chat's 512-token context
LONG: dict[str, Any] = {"stream": True, "max_tokens": MAX_TOKENS, "ignore_eos": True, "temperature": 0}
STOP_WITHIN_S = 1.0  # what the product promises
MIN_BUDGET_S = 0.2  # below this, scheduling noise would decide the outcome
EVENTS_BEFORE_LEAVING = 6

STREAMS: dict[str, tuple[str, dict[str, Any]]] = {
    # n=4 replies run one after the other: leaving must also stop the choices not started yet. With a
    # conversation_id the exchange would be stored, but only once the reply is whole.
    "chat-completions": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi"}], "n": 4, "conversation_id": "", **LONG},
    ),
    "completions": ("/v1/completions", {"prompt": "Hello", **LONG}),
}


def in_flight(http: httpx.Client, model: str) -> int:
    return int(http.get("/ready").json()["in_flight"][model])


def wait_until_idle(http: httpx.Client, model: str, within_s: float) -> None:
    wait_until(
        lambda: in_flight(http, model) == 0,
        within=within_s,
        interval=0.01,
        message="/ready still reports the generation running",
    )


@pytest.fixture(scope="module")
def seconds_per_token(live_server: LiveServer) -> float:
    """This machine's decode speed, measured on a reply that runs to its end."""
    tokens = 96
    body = {"prompt": "Hello", "max_tokens": tokens, "ignore_eos": True, "temperature": 0}
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        client.post("/v1/completions", json=body).raise_for_status()  # warm up
        started = time.monotonic()
        reply = client.post("/v1/completions", json=body).raise_for_status().json()
    assert reply["usage"]["completion_tokens"] == tokens
    return (time.monotonic() - started) / tokens


@pytest.mark.parametrize(("path", "body"), STREAMS.values(), ids=STREAMS.keys())
def test_leaving_mid_stream_stops_the_generation(
    live_server: LiveServer, http: httpx.Client, seconds_per_token: float, path: str, body: dict[str, Any]
) -> None:
    model = live_server.model
    # Stopping must come well before the abandoned reply could have ended by itself, or this test
    # would pass without any cancellation: within half the work left, and at most the promised second.
    work_left_s = (MAX_TOKENS - EVENTS_BEFORE_LEAVING) * seconds_per_token
    budget_s = min(STOP_WITHIN_S, work_left_s / 2)
    if budget_s < MIN_BUDGET_S:
        pytest.skip(f"this machine decodes too fast ({work_left_s:.2f}s a reply) to tell a stop from an end")
    if "conversation_id" in body:
        body = {**body, "conversation_id": uuid.uuid4().hex}
    wait_until_idle(http, model, within_s=60)  # nothing left over from another test

    with (
        httpx.Client(base_url=live_server.url, timeout=60) as client,
        client.stream("POST", path, json=body) as response,
    ):
        assert response.status_code == 200, response.read()
        # One iterator held for the whole block: dropping a half-read httpx line iterator closes the
        # connection there and then, which would be leaving already.
        events = sse_data(response.iter_lines())
        for _ in range(EVENTS_BEFORE_LEAVING):
            assert next(events) != "[DONE]"
        assert in_flight(http, model) == 1, "the reply is still being generated when the client leaves"
    left_at = time.monotonic()  # leaving the block closed the connection mid-stream

    wait_until_idle(http, model, within_s=budget_s)
    next_reply = http.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 1})
    waited_s = time.monotonic() - left_at
    assert next_reply.status_code == 200
    assert waited_s < budget_s, (
        f"the next request was answered {waited_s:.2f}s after the client left: the abandoned reply "
        f"({work_left_s:.2f}s of work left) kept the model's worker busy"
    )

    if "conversation_id" in body:
        stored = http.get("/chat/get/messages/", params={"conversation_id": body["conversation_id"]})
        assert stored.status_code == 404, "a reply the client left is not stored half-written"


def test_a_stream_read_to_its_end_is_whole(http: httpx.Client) -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 64,
        "ignore_eos": True,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        events = list(sse_data(response.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    finishes = [chunk["choices"][0]["finish_reason"] for chunk in chunks if chunk["choices"]]
    assert finishes[-1] == "length" and finishes.count("length") == 1
    assert chunks[-1]["usage"]["completion_tokens"] == 64
