"""/v1/tokenize, /v1/estimate and local /v1/embeddings (packaged all-MiniLM-L6-v2), over HTTP."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.api.conftest import user
from tests.api.test_errors import assert_error

# Nothing listens here: an estimate must never call the upstream.
UNREACHABLE = "http://127.0.0.1:9/v1"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The bundled chat model, the packaged embeddings model and a priced remote model."""
    data_dir: Path = tmp_path_factory.mktemp("tokens-data")
    models = [
        {"name": "tiny-chat", "model": "tiny-chat"},
        {"name": "minilm", "model": "all-MiniLM-L6-v2", "task": "embeddings"},
        {
            "name": "priced",
            "provider": "openai",
            "api_base": UNREACHABLE,
            "model": "some-upstream-model",
            "context_window": 8192,
            "pricing": {"input_per_1k": 0.5, "output_per_1k": 1.5},
        },
    ]
    settings = load_settings(data_dir=str(data_dir), models=models)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_tokenize_returns_the_ids_the_chat_model_is_sent(gateway: TestClient) -> None:
    messages = [{"role": "system", "content": "Be brief."}, user("Hello there, 你好!")]
    body = gateway.post("/v1/tokenize", json={"model": "tiny-chat", "messages": messages}).json()
    assert body["model"] == "tiny-chat" and body["estimated"] is False
    assert body["count"] == len(body["tokens"]) > 0 and all(isinstance(t, int) for t in body["tokens"])
    chat = gateway.post(
        "/v1/chat/completions", json={"model": "tiny-chat", "messages": messages, "max_tokens": 1}
    )
    assert chat.json()["usage"]["prompt_tokens"] == body["count"]
    prompt = gateway.post("/v1/tokenize", json={"prompt": "Hello there"}).json()  # default model
    assert prompt["model"] == "tiny-chat" and prompt["count"] == len(prompt["tokens"]) < body["count"]


@pytest.mark.parametrize(
    "body",
    [{}, {"messages": []}, {"prompt": "a", "messages": [user("b")]}, {"messages": [{"role": "x"}]}],
)
def test_tokenize_needs_one_of_messages_or_prompt(gateway: TestClient, body: dict[str, object]) -> None:
    assert_error(gateway.post("/v1/tokenize", json=body), 400)
    assert_error(gateway.post("/v1/estimate", json=body), 400)


def test_unknown_model_is_404(gateway: TestClient) -> None:
    response = gateway.post("/v1/tokenize", json={"model": "gpt-9", "prompt": "x"})
    assert_error(response, 404, param="model", code="model_not_found")


def test_remote_counts_are_flagged_as_estimates(gateway: TestClient) -> None:
    body = gateway.post("/v1/tokenize", json={"model": "priced", "messages": [user("x" * 400)]}).json()
    assert body["tokens"] is None and body["estimated"] is True and body["count"] >= 100


def test_local_estimate_is_free_and_bounded_by_the_context(gateway: TestClient) -> None:
    messages = [user("How are you?")]
    prompt_tokens = gateway.post("/v1/tokenize", json={"messages": messages}).json()["count"]
    body = gateway.post("/v1/estimate", json={"messages": messages}).json()
    assert body == {
        "model": "tiny-chat",
        "prompt_tokens": prompt_tokens,
        "max_completion_tokens": 512 - prompt_tokens,  # default_max_tokens, shrunk to the room left
        "estimated": False,
        "context_window": 512,
        "input_cost_usd": 0.0,
        "max_output_cost_usd": 0.0,
        "max_total_cost_usd": 0.0,
        "input_cost_usd_exact": "0",
        "max_output_cost_usd_exact": "0",
        "max_total_cost_usd_exact": "0",
    }
    limited = gateway.post("/v1/estimate", json={"messages": messages, "max_tokens": 10}).json()
    assert limited["max_completion_tokens"] == 10


def test_estimate_prices_a_remote_model_from_its_config(gateway: TestClient) -> None:
    request = {"model": "priced", "prompt": "word " * 200, "max_completion_tokens": 100}
    body = gateway.post("/v1/estimate", json=request).json()
    prompt_tokens = body["prompt_tokens"]
    assert body["estimated"] is True and body["context_window"] == 8192 and prompt_tokens > 0
    input_cost = Decimal("0.5") * prompt_tokens / 1000
    assert body["input_cost_usd_exact"] == format(input_cost.normalize(), "f")
    assert body["max_output_cost_usd_exact"] == "0.15"  # 100 tokens at $1.5 per 1k
    assert Decimal(body["max_total_cost_usd_exact"]) == input_cost + Decimal("0.15")
    assert body["max_total_cost_usd"] == pytest.approx(float(input_cost) + 0.15)


def test_local_embeddings_float_and_base64(gateway: TestClient) -> None:
    texts = ["A cat is sleeping on the sofa.", "A kitten naps on the couch.", "Stock markets fell."]
    body = gateway.post("/v1/embeddings", json={"model": "minilm", "input": texts}).json()
    assert body["model"] == "minilm" and [d["index"] for d in body["data"]] == [0, 1, 2]
    cat, kitten, stocks = (d["embedding"] for d in body["data"])
    assert len(cat) == 384 and math.isclose(math.hypot(*cat), 1.0, abs_tol=1e-4)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(cat, kitten) > cosine(cat, stocks)
    encoded = gateway.post(
        "/v1/embeddings", json={"model": "minilm", "input": texts[0], "encoding_format": "base64"}
    ).json()
    decoded = struct.unpack("<384f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert list(decoded) == pytest.approx(cat, abs=1e-6)
    assert gateway.get("/ready").json()["models"]["minilm"] == "ready"


def test_tokenize_an_embeddings_model_with_its_tokenizer(gateway: TestClient) -> None:
    body = gateway.post("/v1/tokenize", json={"model": "minilm", "prompt": "hello world"}).json()
    assert body == {"model": "minilm", "tokens": [101, 7592, 2088, 102], "count": 4, "estimated": False}
    estimate = gateway.post("/v1/estimate", json={"model": "minilm", "prompt": "hello world"}).json()
    assert estimate["max_completion_tokens"] == 0 and estimate["context_window"] == 256


@pytest.mark.parametrize("stream", [False, True])
def test_chat_with_an_embeddings_model_is_400(gateway: TestClient, stream: bool) -> None:
    response = gateway.post(
        "/v1/chat/completions", json={"model": "minilm", "messages": [user("hi")], "stream": stream}
    )
    assert "is an embeddings model" in assert_error(response, 400, param="model")["message"]


def test_embeddings_from_a_chat_model_is_400(gateway: TestClient) -> None:
    response = gateway.post("/v1/embeddings", json={"model": "tiny-chat", "input": "hi"})
    assert "does not support embeddings" in assert_error(response, 400, param="model")["message"]
