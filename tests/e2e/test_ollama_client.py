"""The official ``ollama`` Python client against a live llmserve, unchanged but for its host and key.

One server (authentication on) serves the bundled chat model, the packaged embeddings model and two
gateway groups routed to OpenAI-compatible upstreams on loopback, which fail on demand: the same
client calls work against local and remote models, a stream fails over before its first byte, and
a failure after it reaches the client as Ollama's in-band error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from ollama import Client, ResponseError

from tests.live_server import LiveServer, running_server
from tests.upstreams.openai_app import deployment_for, embedding_for, openai_server
from tests.upstreams.server import Fault, UpstreamServer, serving

pytestmark = pytest.mark.e2e

MASTER = "master-key-for-ollama-e2e-0123456789"
GREEDY = {"temperature": 0, "num_predict": 16}
QUESTION = [{"role": "user", "content": "What is 2 plus 3?"}]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, UpstreamServer]]:
    servers = {name: openai_server(name) for name in ("remote", "cut")}
    with serving(servers) as started:
        yield started


@pytest.fixture(scope="module")
def server(
    upstreams: dict[str, UpstreamServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    config = {
        "models": [
            {"name": "tiny-chat", "model": "tiny-chat"},
            {"name": "minilm", "model": "all-MiniLM-L6-v2", "task": "embeddings"},
            deployment_for("remote", upstreams["remote"]),
            deployment_for("cut", upstreams["cut"]),
        ],
        "router": {"retries": 2, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05},
    }
    directory: Path = tmp_path_factory.mktemp("ollama")
    config_file = directory / "llmserve.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {"LLMSERVE_CONFIG": str(config_file), "LLMSERVE_MASTER_KEY": MASTER}
    with running_server(directory / "data", extra_env=env) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    # How an Ollama tool is pointed at llmserve: its host, and the key as a header.
    with Client(host=server.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=60) as ollama:
        yield ollama


def test_chat_whole_and_streamed_on_the_local_model(client: Client) -> None:
    whole = client.chat(model="tiny-chat:latest", messages=QUESTION, options=GREEDY)
    assert whole.message.role == "assistant" and whole.message.content
    assert whole.done and whole.done_reason in ("stop", "length") and whole.model == "tiny-chat:latest"
    assert whole.prompt_eval_count and whole.eval_count and whole.total_duration and whole.eval_duration
    parts = list(client.chat(model="tiny-chat:latest", messages=QUESTION, options=GREEDY, stream=True))
    assert "".join(part.message.content or "" for part in parts) == whole.message.content
    assert [part.done for part in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].eval_count == whole.eval_count and parts[-1].prompt_eval_duration


def test_generate_applies_the_chat_template_and_raw_does_not(client: Client) -> None:
    chat = client.chat(model="tiny-chat", messages=QUESTION, options=GREEDY)
    generated = client.generate(model="tiny-chat", prompt=QUESTION[0]["content"], options=GREEDY)
    assert generated.response == chat.message.content and generated.done
    streamed = "".join(
        part.response or ""
        for part in client.generate(model="tiny-chat", prompt="Once upon a time", raw=True, stream=True)
    )
    assert streamed
    loaded = client.generate(model="tiny-chat")  # no prompt: Ollama's "load the model"
    assert loaded.done and loaded.done_reason == "load"


def test_list_show_and_ps_describe_every_group(client: Client, server: LiveServer) -> None:
    client.chat(model="tiny-chat", messages=QUESTION, options=GREEDY)
    listed = {model.model: model for model in client.list().models}
    assert set(listed) == {"tiny-chat:latest", "minilm:latest", "remote:latest", "cut:latest"}
    local = listed["tiny-chat:latest"]
    assert local.details is not None and local.details.family == "llama" and local.size
    assert listed["remote:latest"].details is not None and listed["remote:latest"].details.family == "openai"
    shown = client.show("tiny-chat:latest")
    assert shown.capabilities == ["completion"] and shown.modelinfo is not None
    assert client.show("remote").capabilities == ["completion", "tools"]
    assert "tiny-chat:latest" in {model.model for model in client.ps().models}
    version = httpx.get(f"{server.url}/api/version", headers={"Authorization": f"Bearer {MASTER}"})
    assert version.status_code == 200 and version.json()["version"]


def test_embed_on_the_local_embeddings_model(client: Client) -> None:
    embedded = client.embed(model="minilm:latest", input=["a cat", "a kitten"])
    assert len(embedded.embeddings) == 2 and all(len(vector) == 384 for vector in embedded.embeddings)
    legacy = client.embeddings(model="minilm", prompt="a cat")
    assert legacy.embedding == pytest.approx(embedded.embeddings[0], abs=1e-5)


def test_errors_are_response_errors_with_ollamas_status(client: Client, server: LiveServer) -> None:
    with pytest.raises(ResponseError) as missing:
        client.chat(model="no-such-model", messages=QUESTION)
    assert missing.value.status_code == 404 and "no-such-model" in missing.value.error
    with pytest.raises(ResponseError) as streamed_missing:
        list(client.chat(model="no-such-model", messages=QUESTION, stream=True))
    assert streamed_missing.value.status_code == 404
    with pytest.raises(ResponseError) as refused:
        client.chat(model="tiny-chat", messages=QUESTION, format="json")
    assert refused.value.status_code == 400 and "structured output" in refused.value.error
    with pytest.raises(ResponseError) as pulled:
        client.pull("llama3")
    assert pulled.value.status_code == 501 and "not offered" in pulled.value.error
    stranger = Client(host=server.url, headers={"Authorization": "Bearer wrong"})
    with stranger, pytest.raises(ResponseError) as unauthorized:
        stranger.list()
    assert unauthorized.value.status_code == 401 and isinstance(unauthorized.value.error, str)


def test_a_keys_models_limits_and_ledger_apply_as_for_chat_completions(server: LiveServer) -> None:
    admin = {"Authorization": f"Bearer {MASTER}"}
    key = httpx.post(
        f"{server.url}/admin/keys",
        json={"name": "ollama-tool", "models": ["remote"], "rpm": 2},
        headers=admin,
    ).json()
    said = [{"role": "user", "content": "counted"}]
    with Client(host=server.url, headers={"Authorization": f"Bearer {key['key']}"}) as tool:
        with pytest.raises(ResponseError) as forbidden:
            tool.chat(model="tiny-chat", messages=said)
        assert forbidden.value.status_code == 403 and "may not use the model" in forbidden.value.error
        assert tool.chat(model="remote", messages=said).message.content == "[remote] echo: counted"
        assert "".join(p.message.content or "" for p in tool.chat(model="remote", messages=said, stream=True))
    limited = httpx.post(
        f"{server.url}/api/chat",
        json={"model": "remote", "messages": said},
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert set(limited.json()) == {"error"}
    rows = httpx.get(f"{server.url}/admin/usage", params={"api_key": key["id"]}, headers=admin).json()["data"]
    (row,) = [row for row in rows if row["model"] == "remote"]
    assert row["requests"] >= 2 and row["prompt_tokens"] > 0 and row["completion_tokens"] > 0


def test_the_same_calls_through_a_gateway_deployment(
    client: Client, upstreams: dict[str, UpstreamServer]
) -> None:
    whole = client.chat(model="remote:latest", messages=[{"role": "user", "content": "hello there"}])
    assert whole.message.content == "[remote] echo: hello there" and whole.eval_count == 4
    streamed = client.chat(model="remote", messages=[{"role": "user", "content": "one two"}], stream=True)
    assert "".join(part.message.content or "" for part in streamed) == "[remote] echo: one two"
    generated = client.generate(
        model="remote", prompt="hi", options={"num_predict": 2, "stop": ["zz"], "seed": 7}
    )
    assert generated.response == "[remote] echo:" and generated.done_reason == "length"
    sent = upstreams["remote"].requests[-1].json()  # Ollama's option names, in OpenAI's words upstream
    assert (sent["max_tokens"], sent["stop"], sent["seed"]) == (2, ["zz"], 7)
    assert client.embed(model="remote", input="text").embeddings[0] == pytest.approx(embedding_for("text"))
    # format reaches an OpenAI-compatible upstream as response_format (this one answers as always).
    assert client.chat(model="remote", messages=QUESTION, format="json").message.content
    assert upstreams["remote"].requests[-1].json()["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}
    client.chat(model="remote", messages=QUESTION, format=schema)
    sent_format = upstreams["remote"].requests[-1].json()["response_format"]
    assert sent_format["type"] == "json_schema" and sent_format["json_schema"]["schema"] == schema


def test_a_tool_round_trip_through_a_gateway_deployment(client: Client) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    }
    messages: list[dict[str, object]] = [{"role": "user", "content": "define gateway"}]
    asked = client.chat(model="remote", messages=messages, tools=[tool])
    (call,) = asked.message.tool_calls or []
    assert call.function.name == "lookup" and call.function.arguments == {"text": "define gateway"}
    messages += [
        asked.message.model_dump(exclude_none=True),
        {"role": "tool", "content": "a door", "tool_name": "lookup"},
    ]
    answered = client.chat(model="remote", messages=messages, tools=[tool], stream=True)
    assert "".join(part.message.content or "" for part in answered) == "[remote] tool said: a door"


def test_a_stream_fails_over_before_its_first_byte(
    client: Client, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["remote"].fail(Fault("status", 500), Fault("reset"))
    parts = list(client.chat(model="remote", messages=[{"role": "user", "content": "steady"}], stream=True))
    assert "".join(part.message.content or "" for part in parts) == "[remote] echo: steady"
    assert parts[-1].done


def test_a_stream_cut_after_its_first_byte_raises_in_the_client(
    client: Client, upstreams: dict[str, UpstreamServer]
) -> None:
    upstreams["cut"].fail(Fault("cut_stream", after_events=3))
    received: list[str] = []
    with pytest.raises(ResponseError) as cut:
        for part in client.chat(
            model="cut", messages=[{"role": "user", "content": "a b c d e f"}], stream=True
        ):
            received.append(part.message.content or "")
    assert received and "closed the connection" in cut.value.error


def test_a_client_that_leaves_a_stream_stops_the_upstream_call(
    server: LiveServer, upstreams: dict[str, UpstreamServer]
) -> None:
    slow = upstreams["cut"]
    slow.reset_counters()
    slow.fail(Fault("slow_stream", delay_s=0.3))
    words = " ".join(f"w{i}" for i in range(40))
    body = {"model": "cut", "messages": [{"role": "user", "content": words}]}
    auth = {"Authorization": f"Bearer {MASTER}"}
    with httpx.stream("POST", f"{server.url}/api/chat", json=body, headers=auth, timeout=30) as response:
        next(line for line in response.iter_lines() if "w0" in line)
    assert slow.wait_for(lambda: slow.disconnects == 1, timeout=3), "the upstream never saw the client leave"
    assert slow.completed == 0
