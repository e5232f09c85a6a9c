"""The official ``openai`` SDK's Responses API through a live llmserve gateway whose deployments speak
the Responses API natively (``responses_api: native``): the client's body goes to the upstream's own
``/v1/responses`` untranslated, with llmserve keeping the state (the upstream gets the whole chain as
``input`` and ``store: false``), and routing works as for chat (a failover before the first byte).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from openai import OpenAI

from tests.live_server import LiveServer, running_server
from tests.polling import poll
from tests.upstreams.openai_responses_app import OpenAIResponsesUpstream
from tests.upstreams.server import Fault, UpstreamRequest, UpstreamServer, serving

pytestmark = pytest.mark.e2e

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def sdk(url: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def handlers() -> dict[str, OpenAIResponsesUpstream]:
    return {name: OpenAIResponsesUpstream(name) for name in ("first", "second")}


@pytest.fixture(scope="module")
def upstreams(handlers: dict[str, OpenAIResponsesUpstream]) -> Iterator[dict[str, UpstreamServer]]:
    servers = {name: UpstreamServer(handler) for name, handler in handlers.items()}
    with serving(servers) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, UpstreamServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    def deployment(name: str, upstream: str, weight: float, **fields: Any) -> dict[str, Any]:
        base = f"{upstreams[upstream].url}/v1"
        entry = {"name": name, "id": f"{name}-{upstream}", "provider": "openai", "api_base": base}
        return {**entry, "model": "gpt-test", "weight": weight, "timeout": 5, **fields}

    config = {
        "models": [
            deployment("agent", "first", 1000, responses_api="native"),  # tried first: faults fail over
            deployment("agent", "second", 0.001, responses_api="native"),
            deployment("plain", "second", 1),  # the same kind of upstream, translated
        ],
        "router": {"retries": 2, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05},
    }
    directory = tmp_path_factory.mktemp("responses-native")
    (directory / "llmserve.yaml").write_text(yaml.safe_dump(config))
    with running_server(
        directory / "data", extra_env={"LLMSERVE_CONFIG": str(directory / "llmserve.yaml")}
    ) as server:
        yield server


def last_sent(upstream: UpstreamServer) -> tuple[UpstreamRequest, dict[str, Any]]:
    request = upstream.requests[-1]
    return request, request.json()


def test_create_goes_upstream_untranslated_with_the_fields_the_pipeline_does_not_know(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["first"].reset_counters()
    created = sdk(gateway.url).responses.create(
        model="agent",
        instructions="Be brief.",
        input="Hello",
        reasoning={"effort": "low"},
        include=["reasoning.encrypted_content"],
        prompt_cache_key="tenant-7",
        metadata={"trace": "abc"},
    )
    assert created.status == "completed" and created.output_text == "[first] echo: Hello"
    request, sent = last_sent(upstreams["first"])
    assert request.path == "/v1/responses"
    assert sent["model"] == "gpt-test" and sent["store"] is False and "stream" not in sent
    assert sent["reasoning"] == {"effort": "low"} and sent["include"] == ["reasoning.encrypted_content"]
    assert sent["prompt_cache_key"] == "tenant-7" and sent["instructions"] == "Be brief."
    assert sent["metadata"] == {"trace": "abc"}
    assert sent["input"] == [{"type": "message", "role": "user", "content": "Hello"}]
    # The upstream's usage, reasoning tokens included (its reasoning item itself is not carried).
    assert created.usage is not None and created.usage.output_tokens_details.reasoning_tokens == 3
    assert [item.type for item in created.output] == ["message"]


def test_a_stream_is_the_upstreams_typed_events_through_the_pipeline(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["first"].reset_counters()
    with sdk(gateway.url).responses.stream(model="agent", input="Stream it") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "[first] echo: Stream it" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    request, sent = last_sent(upstreams["first"])
    assert request.path == "/v1/responses" and sent["stream"] is True and sent["store"] is False
    assert final.usage is not None and final.usage.input_tokens == 6  # the upstream's count


def test_a_continuation_sends_the_whole_chain_and_no_previous_response_id(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    client = sdk(gateway.url)
    first = client.responses.create(model="agent", input="Hello")
    upstreams["first"].reset_counters()
    with client.responses.stream(
        model="agent", input="Tell me more.", previous_response_id=first.id
    ) as stream:
        second = stream.get_final_response()
    third = client.responses.create(model="agent", input="And then?", previous_response_id=second.id)
    _, sent = last_sent(upstreams["first"])
    assert "previous_response_id" not in sent and sent["store"] is False
    said = [(item["role"], item["content"]) for item in sent["input"]]
    assert said == [
        ("user", [{"type": "input_text", "text": "Hello"}]),
        ("assistant", [{"type": "output_text", "text": "[first] echo: Hello", "annotations": []}]),
        ("user", [{"type": "input_text", "text": "Tell me more."}]),
        ("assistant", [{"type": "output_text", "text": "[first] echo: Tell me more.", "annotations": []}]),
        ("user", "And then?"),
    ]
    assert third.previous_response_id == second.id
    assert client.responses.retrieve(third.id).output_text == "[first] echo: And then?"
    # The upstream's prefix cache, as it reported it: every item but the last.
    assert third.usage is not None and third.usage.input_tokens_details.cached_tokens == 5 + 7 + 7 + 9


def test_a_function_call_round_trip(gateway: LiveServer, upstreams: dict[str, UpstreamServer]) -> None:
    client = sdk(gateway.url)
    called = client.responses.create(model="agent", input="Weather in Paris?", tools=[WEATHER_TOOL])
    (call,) = [item for item in called.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"text": "Weather in Paris?"}
    upstreams["first"].reset_counters()
    output: Any = [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}]
    with client.responses.stream(
        model="agent", previous_response_id=called.id, input=output, tools=[WEATHER_TOOL]
    ) as stream:
        answered = stream.get_final_response()
    assert answered.output_text == "[first] tool said: sunny, 21 C"
    _, sent = last_sent(upstreams["first"])
    kinds = [(item.get("type"), item.get("call_id")) for item in sent["input"]]
    assert kinds == [
        ("message", None),
        ("function_call", call.call_id),
        ("function_call_output", call.call_id),
    ]
    assert sent["tools"] == [WEATHER_TOOL]


def test_a_failover_before_the_first_byte(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer], handlers: dict[str, OpenAIResponsesUpstream]
) -> None:
    client = sdk(gateway.url)
    upstreams["second"].reset_counters()
    upstreams["first"].fail(Fault("status", status=503))
    with client.responses.stream(model="agent", input="Hello") as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "[second] echo: Hello"
    handlers["first"].fail_responses = 1  # a 200 whose stream says response.failed before any text
    with client.responses.stream(model="agent", input="Again") as stream:
        final = stream.get_final_response()
    assert final.output_text == "[second] echo: Again"
    handlers["first"].fail_responses = 1  # a 200 whose body says status failed
    assert client.responses.create(model="agent", input="Once more").output_text == "[second] echo: Once more"
    assert [request.path for request in upstreams["second"].requests] == ["/v1/responses"] * 3


def test_a_background_response_runs_natively_on_the_queue(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    client = sdk(gateway.url)
    upstreams["first"].reset_counters()
    queued = client.responses.create(
        model="agent", input="Later", background=True, reasoning={"effort": "low"}, prompt_cache_key="k"
    )
    assert queued.status in ("queued", "in_progress")
    assert poll(lambda: client.responses.retrieve(queued.id).status == "completed", within=30)
    assert client.responses.retrieve(queued.id).output_text == "[first] echo: Later"
    request, sent = last_sent(upstreams["first"])
    assert request.path == "/v1/responses" and sent["store"] is False and "background" not in sent
    assert sent["reasoning"] == {"effort": "low"} and sent["prompt_cache_key"] == "k"


def test_a_deployment_without_the_flag_is_translated(
    gateway: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["second"].reset_counters()
    created = sdk(gateway.url).responses.create(model="plain", input="Hello", reasoning={"effort": "low"})
    assert created.output_text == "[second] echo: Hello"
    request, sent = last_sent(upstreams["second"])
    assert request.path == "/v1/chat/completions" and "reasoning" not in sent
