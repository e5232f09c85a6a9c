"""The official ``anthropic`` SDK against a live llmserve: the bundled model, and a gateway whose
deployments are loopback upstreams (OpenAI-compatible, translated; Anthropic, passed through).

The gateway tests drive a conversation the way a Claude-Code-style client does with
``ANTHROPIC_BASE_URL`` pointing at llmserve: system blocks with ``cache_control``, ``metadata``, an
``anthropic-beta`` header, tools, every turn streamed, tool results sent back, ``count_tokens`` on the
way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
import yaml
from anthropic.types import MessageParam, ToolParam

from tests.live_server import LiveServer, running_server
from tests.upstreams.anthropic_app import anthropic_server
from tests.upstreams.openai_app import openai_server
from tests.upstreams.server import Fault, UpstreamServer, serving

pytestmark = pytest.mark.e2e

QUESTION = "What is 2 plus 3?"
BETA = "prompt-caching-2024-07-31"
GREEDY = {"temperature": 0}  # the SDK's 2.x signature has no sampling fields; the API still takes them
TOOLS: list[ToolParam] = [
    {
        "name": "read_file",
        "description": "Read a file of the project",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }
]
SYSTEM: list[Any] = [
    {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}
]


def sdk(url: str, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=60)


# -- the bundled model ----------------------------------------------------------------------------


def test_create_and_stream_say_the_same_as_count_tokens_counts(live_server: LiveServer) -> None:
    client = sdk(live_server.url)
    messages: list[MessageParam] = [{"role": "user", "content": QUESTION}]
    created = client.messages.create(
        model=live_server.model, max_tokens=24, messages=messages, extra_body=GREEDY
    )
    assert created.content[0].type == "text" and created.content[0].text
    with client.messages.stream(
        model=live_server.model, max_tokens=24, messages=messages, extra_body=GREEDY
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == created.content[0].text == final.content[0].text  # type: ignore[union-attr]
    assert final.usage == created.usage and final.stop_reason == created.stop_reason
    counted = client.messages.count_tokens(model=live_server.model, messages=messages)
    assert counted.input_tokens == created.usage.input_tokens


def test_errors_are_the_sdks_typed_exceptions(live_server: LiveServer) -> None:
    client = sdk(live_server.url)
    messages: list[MessageParam] = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=messages)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError, match="tools"):  # tools on the local model: issue 17
        client.messages.create(model=live_server.model, max_tokens=8, messages=messages, tools=TOOLS)
    with (
        pytest.raises(anthropic.BadRequestError),
        client.messages.stream(model=live_server.model, max_tokens=8, messages=messages, tools=TOOLS) as s,
    ):
        s.get_final_message()


def test_the_beta_client_and_a_head_probe_work(live_server: LiveServer) -> None:
    client = sdk(live_server.url)
    reply = client.beta.messages.create(  # POST /v1/messages?beta=true
        model=live_server.model, max_tokens=8, messages=[{"role": "user", "content": "hi"}], betas=[BETA]
    )
    assert reply.content
    probe = httpx.head(f"{live_server.url}/", timeout=10)  # what clients send to check a base URL
    assert probe.status_code == 200 and probe.content == b""


# -- a gateway ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, UpstreamServer]]:
    servers = {
        "first": openai_server("first"),
        "second": openai_server("second"),
        "claude": anthropic_server("claude-up", api_key="sk-ant-upstream"),
    }
    with serving(servers) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, UpstreamServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    def openai(upstream: UpstreamServer, deployment_id: str, weight: float) -> dict[str, Any]:
        return {
            "name": "agent",
            "id": deployment_id,
            "provider": "openai",
            "api_base": f"{upstream.url}/v1",
            "model": "gpt-test",
            "weight": weight,
            "timeout": 5,
        }

    claude = {
        "name": "claude",
        "id": "claude-1",
        "provider": "anthropic",
        "api_base": upstreams["claude"].url,
        "api_key": "sk-ant-upstream",
        "model": "claude-upstream-model",
    }
    config = {
        # "first" is tried first (nearly all the weight), so a fault queued on it shows the failover.
        "models": [
            openai(upstreams["first"], "agent-first", 1000),
            openai(upstreams["second"], "agent-second", 0.001),
            claude,
        ],
        "router": {"retries": 2, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05},
    }
    directory = tmp_path_factory.mktemp("anthropic-gateway")
    (directory / "llmserve.yaml").write_text(yaml.safe_dump(config))
    with running_server(
        directory / "data", extra_env={"LLMSERVE_CONFIG": str(directory / "llmserve.yaml")}
    ) as server:
        yield server


def _streamed(
    client: anthropic.Anthropic, model: str, messages: list[MessageParam]
) -> anthropic.types.Message:
    with client.messages.stream(
        model=model,
        max_tokens=256,
        system=SYSTEM,
        tools=TOOLS,
        messages=messages,
        metadata={"user_id": "session-1"},
        extra_headers={"anthropic-beta": BETA},
    ) as stream:
        return stream.get_final_message()


def _text(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def _agent_loop(client: anthropic.Anthropic, model: str) -> list[anthropic.types.Message]:
    """Two user turns, each answered after one tool call, every request streamed."""
    messages: list[Any] = []
    answers = []
    for prompt, contents in (("Read README.md", "# llmserve"), ("Now read setup.py", "import setuptools")):
        messages.append(
            {
                "role": "user",
                "content": [{"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}}],
            }
        )
        counted = client.messages.count_tokens(model=model, system=SYSTEM, tools=TOOLS, messages=messages)
        assert counted.input_tokens > 0
        called = _streamed(client, model, messages)
        assert called.stop_reason == "tool_use", called
        (use,) = [block for block in called.content if block.type == "tool_use"]
        assert use.name == "read_file" and isinstance(use.input, dict)
        messages.append(
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in called.content]}
        )
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": contents}]}
        )
        answered = _streamed(client, model, messages)
        assert answered.stop_reason == "end_turn" and contents in _text(answered)
        messages.append({"role": "assistant", "content": _text(answered)})
        answers += [called, answered]
    return answers


def test_a_tool_using_agent_through_an_openai_compatible_upstream(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["first"].reset_counters()
    answers = _agent_loop(sdk(gateway.url), "agent")
    assert all(answer.usage.input_tokens > 0 for answer in answers)
    assert all(answer.usage.output_tokens > 0 for answer in answers[1::2])  # this upstream counts words
    last = upstreams["first"].requests[-1].json()
    roles = [m["role"] for m in last["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "tool"]
    assert last["messages"][3]["tool_call_id"] == answers[0].content[0].id  # type: ignore[union-attr]
    assert last["tools"][0]["function"]["name"] == "read_file" and last["stream"] is True


def test_a_tool_using_agent_through_an_anthropic_upstream_goes_as_sent(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["claude"].reset_counters()
    _agent_loop(sdk(gateway.url), "claude")
    seen = upstreams["claude"].requests[-1]
    body = seen.json()
    assert seen.headers["anthropic-beta"] == BETA and seen.headers["x-api-key"] == "sk-ant-upstream"
    assert body["model"] == "claude-upstream-model"
    assert body["system"] == SYSTEM and body["metadata"] == {"user_id": "session-1"}
    assert body["tools"] == TOOLS  # Anthropic's own shape, not a translation's
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    counts = [r for r in upstreams["claude"].requests if r.path == "/v1/messages/count_tokens"]
    assert len(counts) == 2 and counts[0].json()["tools"] == TOOLS  # Anthropic counted, not estimated


def test_count_tokens_of_an_anthropic_group_is_the_upstreams_own(gateway: LiveServer) -> None:
    client = sdk(gateway.url)
    messages: list[Any] = [{"role": "user", "content": "one two three"}]
    counted = client.messages.count_tokens(model="claude", system="be brief", messages=messages)
    answered = client.messages.create(model="claude", max_tokens=8, system="be brief", messages=messages)
    assert counted.input_tokens == answered.usage.input_tokens == 5  # the upstream counts words


def test_an_image_reaches_an_anthropic_upstream_and_is_refused_elsewhere(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    messages: list[Any] = [{"role": "user", "content": [image, {"type": "text", "text": "What is it?"}]}]
    client = sdk(gateway.url)
    reply = client.messages.create(
        model="claude", max_tokens=32, messages=messages, extra_body={"priority": 5}
    )
    assert reply.content[0].text == "claude-up: What is it?"  # type: ignore[union-attr]
    sent = upstreams["claude"].requests[-1].json()
    assert (
        sent["messages"][0]["content"][0] == image and "priority" not in sent
    )  # llmserve's, not Anthropic's
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.content\.0"):
        client.messages.create(model="agent", max_tokens=32, messages=messages)


def test_an_anthropic_upstreams_own_message_comes_back(gateway: LiveServer) -> None:
    """What the pipeline's neutral answer cannot say (which stop sequence matched) survives."""
    reply = sdk(gateway.url).messages.create(
        model="claude",
        max_tokens=32,
        stop_sequences=["three"],
        messages=[{"role": "user", "content": "one two three"}],
    )
    assert (reply.stop_reason, reply.stop_sequence) == ("stop_sequence", "three")
    assert reply.content[0].text == "claude-up: one two "  # type: ignore[union-attr]
    assert reply.id.startswith("msg_") and reply.model == "claude"


def test_a_failed_first_deployment_is_left_before_the_first_byte(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    first, second = upstreams["first"], upstreams["second"]
    first.reset_counters()
    second.reset_counters()
    first.fail(Fault("status", status=503), Fault("reset"))
    client = sdk(gateway.url)
    with client.messages.stream(
        model="agent", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        response = stream.response
    assert text == "[second] echo: hi"
    assert response.headers["x-llmserve-deployment"] == "agent-second"
    assert len(first.requests) >= 1 and len(second.requests) == 1


def test_an_upstream_failure_on_every_try_is_the_sdks_typed_error(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["claude"].fail(
        *[
            Fault(
                "status",
                status=529,
                body=b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}',
            )
        ]
        * 3
    )
    with pytest.raises(anthropic.InternalServerError) as failed:
        sdk(gateway.url).messages.create(
            model="claude", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert failed.value.body["type"] == "error"  # type: ignore[index]
    upstreams["claude"].heal()
