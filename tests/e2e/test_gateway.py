"""The gateway end to end: a live llmserve routes to real HTTP upstreams on loopback that fail on demand.

One llmserve process serves several groups from a config file a user could write; each test owns its
groups (breaker state is per deployment and lasts for the process). The upstreams run in this test
process, so a test injects faults and then reads what the upstream saw (requests, disconnects).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openai import OpenAI

from tests.live_server import LiveServer, running_server, sse_data
from tests.upstreams.anthropic_app import anthropic_server
from tests.upstreams.openai_app import embedding_for, openai_server
from tests.upstreams.server import Fault, UpstreamServer

pytestmark = pytest.mark.e2e

COOLDOWN_S = 3.0
FAILURE_THRESHOLD = 3
UPSTREAMS = ("dead", "alive", "limited", "backup", "flaky", "slow", "hedge_slow", "hedge_fast", "small")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, UpstreamServer]]:
    servers = {name: openai_server(name) for name in UPSTREAMS if name != "backup"}
    servers["backup"] = anthropic_server("claude-backup", api_key="sk-ant-test")
    servers["small"] = openai_server("small", context_tokens=16)
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def _openai(group: str, upstream: UpstreamServer, deployment_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": group,
        "id": deployment_id,
        "provider": "openai",
        "api_base": f"{upstream.url}/v1",
        "model": "gpt-test",
        "timeout": 5,
        **extra,
    }


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, UpstreamServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    u = upstreams
    config = {
        "models": [
            _openai("pair", u["dead"], "pair-dead"),
            _openai("pair", u["alive"], "pair-alive"),
            _openai("limited", u["limited"], "limited-1"),
            {
                "name": "claude",
                "id": "claude-1",
                "provider": "anthropic",
                "api_base": u["backup"].url,
                "api_key": "env:TEST_ANTHROPIC_KEY",
                "model": "claude-test",
            },
            _openai("flaky", u["flaky"], "flaky-1"),
            _openai("slow", u["slow"], "slow-1", stream_idle_timeout=5),
            _openai("hedged", u["hedge_slow"], "hedge-slow", weight=1000),
            _openai("hedged", u["hedge_fast"], "hedge-fast", weight=0.001),
            _openai("small", u["small"], "small-1"),
        ],
        "router": {
            "retries": 2,
            "backoff_base_seconds": 0.01,
            "backoff_max_seconds": 0.05,
            "max_retry_after_seconds": 0.2,
            "fallbacks": {"limited": ["claude"]},
            "context_window_fallbacks": {"small": ["claude"]},
            "hedge_after_ms": 300,
            "circuit_breaker": {
                "failure_threshold": FAILURE_THRESHOLD,
                "cooldown_seconds": COOLDOWN_S,
                "min_calls": 1000,
                # These tests count what an open breaker keeps away: no start-up probing each second.
                "startup_grace_seconds": 0,
            },
        },
    }
    directory = tmp_path_factory.mktemp("gateway")
    config_file = directory / "llmserve.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {"LLMSERVE_CONFIG": str(config_file), "TEST_ANTHROPIC_KEY": "sk-ant-test"}
    with running_server(directory / "data", extra_env=env) as server:
        yield server


@pytest.fixture
def sdk(gateway: LiveServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=30) as client:
        yield client


def chat(gateway: LiveServer, group: str, text: str, **extra: Any) -> httpx.Response:
    body = {"model": group, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)


def deployment_view(gateway: LiveServer, deployment_id: str) -> dict[str, Any]:
    rows = httpx.get(f"{gateway.url}/admin/deployments", timeout=10).json()["data"]
    (row,) = [row for row in rows if row["id"] == deployment_id]
    return dict(row)


def breaker_state(gateway: LiveServer, deployment_id: str) -> str:
    breaker = deployment_view(gateway, deployment_id)["breaker"]
    return str(breaker["state"] if isinstance(breaker, dict) else breaker)


def test_a_group_with_one_dead_deployment_answers_every_request(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer], sdk: OpenAI
) -> None:
    upstreams["dead"].fail_always(Fault("reset"))
    answered_by: list[str] = []
    for i in range(30):
        response = chat(gateway, "pair", f"question {i}")
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == f"[alive] echo: question {i}"
        answered_by.append(response.headers["x-llmserve-deployment"])
    for i in range(10):
        stream = sdk.chat.completions.create(
            model="pair", messages=[{"role": "user", "content": f"streamed {i}"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == f"[alive] echo: streamed {i}"
    assert set(answered_by) == {"pair-alive"}
    # After FAILURE_THRESHOLD resets the dead one's breaker is open: no more wasted attempts.
    # (half_open when this loaded machine took longer than the cooldown since it opened: it tripped.)
    assert breaker_state(gateway, "pair-dead") in ("open", "half_open")
    assert chat(gateway, "pair", "once more").headers["x-llmserve-attempts"] == "1"
    view = deployment_view(gateway, "pair-dead")
    assert view["failures"] >= FAILURE_THRESHOLD and "sk-" not in json.dumps(view)


def test_a_rate_limited_group_falls_back_to_another_provider(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer], sdk: OpenAI
) -> None:
    upstreams["limited"].fail_always(Fault("status", 429, retry_after="30"))
    reply = sdk.chat.completions.with_raw_response.create(
        model="limited", messages=[{"role": "user", "content": "hello there"}]
    )
    completion = reply.parse()
    assert completion.choices[0].message.content == "claude-backup: hello there"
    assert completion.model == "claude"
    assert reply.headers["x-llmserve-deployment"] == "claude-1"
    # Retry-After 30 s is beyond max_retry_after_seconds: the gateway fell back instead of waiting.
    assert float(reply.headers["x-llmserve-overhead-ms"]) < 1000
    stream = sdk.chat.completions.create(
        model="limited", messages=[{"role": "user", "content": "streamed hello"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "claude-backup: streamed hello"
    )


def test_breaker_opens_then_recovers_after_the_cooldown(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    flaky = upstreams["flaky"]
    flaky.fail_always(Fault("status", 503))
    for _ in range(FAILURE_THRESHOLD):
        assert chat(gateway, "flaky", "hi").status_code in (502, 503)
    assert breaker_state(gateway, "flaky-1") == "open"
    seen = len(flaky.requests)
    refused = chat(gateway, "flaky", "hi")
    assert refused.status_code == 503 and "Retry-After" in refused.headers
    assert len(flaky.requests) == seen  # an open breaker spares the upstream
    flaky.heal()
    time.sleep(COOLDOWN_S + 0.2)
    recovered = chat(gateway, "flaky", "back?")
    assert recovered.status_code == 200, recovered.text
    assert breaker_state(gateway, "flaky-1") == "closed"


def test_a_stream_fails_over_before_its_first_byte(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer], sdk: OpenAI
) -> None:
    upstreams["limited"].heal()
    upstreams["limited"].fail(Fault("status", 500), Fault("reset"))
    stream = sdk.chat.completions.create(
        model="limited", messages=[{"role": "user", "content": "steady"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "[limited] echo: steady"


def test_a_stream_cut_after_its_first_byte_ends_with_an_error_event(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["slow"].fail(Fault("cut_stream", after_events=3))
    body = {
        "model": "slow",
        "messages": [{"role": "user", "content": "one two three four five"}],
        "stream": True,
    }
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        events = list(sse_data(response.iter_lines()))
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] and "closed the connection" in error["message"]
    assert any("delta" in json.loads(e)["choices"][0] for e in events[:-2] if json.loads(e).get("choices"))


def test_a_client_cancel_reaches_the_upstream(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    slow = upstreams["slow"]
    slow.reset_counters()
    slow.fail(Fault("slow_stream", delay_s=0.3))
    words = " ".join(f"w{i}" for i in range(40))
    body = {"model": "slow", "messages": [{"role": "user", "content": words}], "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data: ") and "w0" in line)
    left = time.monotonic()
    assert slow.wait_for(lambda: slow.disconnects == 1, timeout=3), "the upstream never saw the cancel"
    assert time.monotonic() - left < 1.5
    assert slow.completed == 0


def test_hedging_returns_the_fast_copy_and_cancels_the_slow_one(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    slow, fast = upstreams["hedge_slow"], upstreams["hedge_fast"]
    slow.reset_counters()
    slow.fail(Fault("delay", delay_s=5))
    started = time.monotonic()
    response = chat(gateway, "hedged", "race")
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2
    assert response.json()["choices"][0]["message"]["content"] == "[hedge_fast] echo: race"
    assert response.headers["x-llmserve-deployment"] == "hedge-fast"
    assert response.headers["x-llmserve-attempts"] == "2"
    assert slow.wait_for(lambda: slow.disconnects == 1, timeout=3), "the losing copy was not cancelled"
    assert len(fast.requests) >= 1


def test_a_prompt_too_long_for_the_group_falls_back_to_a_larger_context(gateway: LiveServer) -> None:
    long_text = " ".join(["word"] * 40)
    response = chat(gateway, "small", long_text, max_tokens=8)
    assert response.status_code == 200, response.text
    assert response.headers["x-llmserve-deployment"] == "claude-1"


def test_client_errors_are_not_retried(gateway: LiveServer, upstreams: dict[str, UpstreamServer]) -> None:
    alive = upstreams["alive"]
    alive.fail(
        Fault(
            "status", 400, body=b'{"error": {"message": "bad tool schema", "type": "invalid_request_error"}}'
        )
    )
    upstreams["dead"].heal()
    seen = len(alive.requests) + len(upstreams["dead"].requests)
    response = chat(gateway, "pair", "x")
    # The dead deployment's breaker may still be open, so "alive" answers: with a 400, once.
    if response.status_code == 200:  # the half-open "dead" one took it instead
        return
    assert response.status_code == 400
    assert "bad tool schema" in response.json()["error"]["message"]
    assert len(alive.requests) + len(upstreams["dead"].requests) == seen + 1


def test_tools_and_embeddings_pass_through(gateway: LiveServer, sdk: OpenAI) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    }
    completion = sdk.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "find it"}],
        tools=[tool],  # type: ignore[list-item]
    )
    calls = completion.choices[0].message.tool_calls or []
    assert completion.choices[0].finish_reason == "tool_calls" and len(calls) == 1
    assert calls[0].type == "function" and calls[0].function.name == "lookup"
    embeddings = sdk.embeddings.create(model="pair", input=["a", "b"])
    for got, text in zip(embeddings.data, ["a", "b"], strict=True):  # float32 on the wire (base64)
        assert got.embedding == pytest.approx(embedding_for(text), abs=1e-6)


def test_config_refuses_a_fallback_to_an_unknown_group(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = {"models": [{"name": "a", "model": "tiny-chat"}], "router": {"fallbacks": {"a": ["nope"]}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "llmserve", "serve", "--config", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "nope" in result.stderr
