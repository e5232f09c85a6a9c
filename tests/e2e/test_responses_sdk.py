"""The official ``openai`` SDK's Responses API (``client.responses``) against a live llmserve: the
bundled model, and a gateway whose deployments are loopback OpenAI-compatible upstreams (the
Responses request is translated to a chat call and back). Stored state is checked across a restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from openai import OpenAI

from tests.live_server import LiveServer, running_server
from tests.upstreams.openai_app import openai_server
from tests.upstreams.server import Fault, UpstreamServer, serving

pytestmark = pytest.mark.e2e

GREEDY: dict[str, Any] = {"temperature": 0, "max_output_tokens": 24}
WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def sdk(url: str, key: str = "unused") -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


# -- the bundled model ----------------------------------------------------------------------------


def test_create_and_stream_say_the_same_and_the_stream_helpers_parse_it(live_server: LiveServer) -> None:
    client = sdk(live_server.url)
    created = client.responses.create(model=live_server.model, input="What is your name?", **GREEDY)
    assert created.status in ("completed", "incomplete") and created.output_text
    assert created.usage is not None and created.usage.input_tokens > 0
    assert created.usage.total_tokens == created.usage.input_tokens + created.usage.output_tokens
    with client.responses.stream(model=live_server.model, input="What is your name?", **GREEDY) as stream:
        kinds: list[str] = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == created.output_text
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == f"response.{final.status}"
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    order = ["response.output_item.added", "response.content_part.added", "response.output_text.done"]
    assert [kinds.index(kind) for kind in order] == sorted(kinds.index(kind) for kind in order)


def test_three_turns_chained_by_previous_response_id_and_the_stored_state(live_server: LiveServer) -> None:
    client = sdk(live_server.url)
    first = client.responses.create(
        model=live_server.model, instructions="You are terse.", input="Hello!", **GREEDY
    )
    second = client.responses.create(
        model=live_server.model, input="Tell me more.", previous_response_id=first.id, **GREEDY
    )
    with client.responses.stream(
        model=live_server.model, input="And then?", previous_response_id=second.id, **GREEDY
    ) as stream:
        third = stream.get_final_response()
    # Stored the moment it completed, a stream's too.
    assert client.responses.retrieve(third.id).output_text == third.output_text
    assert client.responses.retrieve(second.id).previous_response_id == first.id
    items = client.responses.input_items.list(third.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].model_dump()["content"][0]["text"] == "And then?"
    # Continuing from the chain's end sees all of it: the prompt is longer than a fresh one.
    fresh = client.responses.create(model=live_server.model, input="And then?", **GREEDY)
    assert third.usage is not None and fresh.usage is not None
    assert third.usage.input_tokens > fresh.usage.input_tokens
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError, match="not found"):  # its chain is broken now
        client.responses.create(model=live_server.model, input="x", previous_response_id=second.id)


def test_background_poll_and_cancel(live_server: LiveServer) -> None:
    client = sdk(live_server.url)
    queued = client.responses.create(
        model=live_server.model, input="Count to three.", background=True, **GREEDY
    )
    assert queued.status in ("queued", "in_progress") and queued.background
    deadline = time.monotonic() + 60
    while (polled := client.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert polled.status in ("completed", "incomplete") and polled.output_text
    cancelled = client.responses.cancel(queued.id)  # finished: cancelling changes nothing
    assert cancelled.status == polled.status
    with pytest.raises(openai.BadRequestError, match="background"):
        client.responses.cancel(client.responses.create(model=live_server.model, input="hi", **GREEDY).id)


def test_refusals_are_clear_400s(live_server: LiveServer) -> None:
    client = sdk(live_server.url)
    with pytest.raises(openai.BadRequestError, match="tools"):  # tools on the local model: issue 17
        client.responses.create(model=live_server.model, input="hi", tools=[WEATHER_TOOL])
    with pytest.raises(openai.BadRequestError, match="web_search"):
        client.responses.create(model=live_server.model, input="hi", tools=[{"type": "web_search"}])
    image: Any = [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]
    with pytest.raises(openai.BadRequestError, match="input_image"):
        client.responses.create(model=live_server.model, input=image)
    with pytest.raises(openai.BadRequestError):  # strict: a string is not a number
        client.responses.create(model=live_server.model, input="hi", extra_body={"max_output_tokens": "64"})


def test_a_chain_survives_a_restart(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        first = sdk(server.url).responses.create(model=server.model, input="Remember me.", **GREEDY)
    with running_server(tmp_path / "data") as server:
        client = sdk(server.url)
        assert client.responses.retrieve(first.id).output_text == first.output_text
        second = client.responses.create(
            model=server.model, input="Who am I?", previous_response_id=first.id, **GREEDY
        )
        assert second.previous_response_id == first.id and second.output_text


# -- a gateway ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, UpstreamServer]]:
    servers = {"first": openai_server("first"), "second": openai_server("second")}
    with serving(servers) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, UpstreamServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    def deployment(upstream: UpstreamServer, deployment_id: str, weight: float) -> dict[str, Any]:
        return {
            "name": "agent",
            "id": deployment_id,
            "provider": "openai",
            "api_base": f"{upstream.url}/v1",
            "model": "gpt-test",
            "weight": weight,
            "timeout": 5,
        }

    config = {
        "models": [
            deployment(upstreams["first"], "agent-first", 1000),  # tried first: faults show failover
            deployment(upstreams["second"], "agent-second", 0.001),
        ],
        "router": {"retries": 2, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05},
    }
    directory = tmp_path_factory.mktemp("responses-gateway")
    (directory / "llmserve.yaml").write_text(yaml.safe_dump(config))
    with running_server(
        directory / "data", extra_env={"LLMSERVE_CONFIG": str(directory / "llmserve.yaml")}
    ) as server:
        yield server


def test_a_function_tool_round_trip_through_the_gateway(gateway: LiveServer) -> None:
    client = sdk(gateway.url)
    called = client.responses.create(model="agent", input="Weather in Paris?", tools=[WEATHER_TOOL])
    (call,) = [item for item in called.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"text": "Weather in Paris?"}
    with client.responses.stream(
        model="agent",
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        answered = stream.get_final_response()
    assert "tool said: sunny, 21 C" in answered.output_text


def test_a_streamed_tool_call_arrives_as_function_call_events(gateway: LiveServer) -> None:
    client = sdk(gateway.url)
    with client.responses.stream(model="agent", input="Weather in Rome?", tools=[WEATHER_TOOL]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert (
        "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    )
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert json.loads(call.arguments) == {"text": "Weather in Rome?"}


def test_json_schema_format_reaches_the_upstream_as_response_format(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    upstreams["first"].reset_counters()
    sdk(gateway.url).responses.create(
        model="agent",
        input="A city, as JSON",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    sent = upstreams["first"].requests[-1].json()
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": schema, "strict": True},
    }


def test_a_failover_before_the_first_byte_is_invisible(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["first"].fail(Fault("status", status=503))
    with sdk(gateway.url).responses.stream(model="agent", input="Hello") as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and "[second]" in final.output_text


def test_another_key_cannot_read_or_continue_a_stored_response(tmp_path: Path) -> None:
    master = "master-key-responses-tenancy-0123456789"
    with running_server(tmp_path / "data", extra_env={"LLMSERVE_MASTER_KEY": master}) as server:
        admin = sdk(server.url, master)
        keys = [admin.post("/../admin/keys", cast_to=dict, body={"name": n}) for n in ("a", "b")]
        owner, other = (sdk(server.url, str(key["key"])) for key in keys)
        mine = owner.responses.create(model=server.model, input="my secret is 1234", **GREEDY)
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(mine.id)
        with pytest.raises(openai.BadRequestError, match="not found"):
            other.responses.create(model=server.model, input="secret?", previous_response_id=mine.id)
        assert owner.responses.retrieve(mine.id).id == mine.id
