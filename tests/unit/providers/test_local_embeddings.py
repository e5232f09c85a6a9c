"""The local embeddings provider on the packaged all-MiniLM-L6-v2 (offline, real weights).

How an install without the ``embeddings`` extra explains itself is checked in a fresh interpreter, in
tests/e2e/providers/test_local_embeddings.py."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator, Sequence

import pytest

from llmserve.config import ModelDeployment
from llmserve.engine.loader import LoadedModel
from llmserve.errors import InvalidRequest
from llmserve.providers.local_embeddings import (
    Embedder,
    GroupEmbedder,
    LocalEmbeddingProvider,
    load_sentence_transformer,
    packaged_minilm_deployment,
)
from llmserve.types import ChatInput, ChatMessage, TextInput


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalEmbeddingProvider]:
    minilm = LocalEmbeddingProvider(packaged_minilm_deployment())
    yield minilm
    asyncio.run(minilm.close())


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # the vectors are unit length


async def test_vectors_have_384_dimensions_and_unit_length(provider: LocalEmbeddingProvider) -> None:
    vectors = await provider.embed(["The cat sat on the mat.", "量子力学", ""])
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(math.hypot(*v), 1.0, abs_tol=1e-4) for v in vectors)
    assert await provider.embed([]) == []


async def test_similar_sentences_are_closer_than_unrelated_ones(provider: LocalEmbeddingProvider) -> None:
    cat, kitten, stocks = await provider.embed(
        ["A cat is sleeping on the sofa.", "A kitten naps on the couch.", "Stock markets fell sharply today."]
    )
    assert cosine(cat, kitten) > 0.6 > cosine(cat, stocks)
    # Same text, same vector: the cache relies on it.
    assert (await provider.embed(["A cat is sleeping on the sofa."]))[0] == pytest.approx(cat, abs=1e-6)


async def test_concurrent_first_calls_load_the_model_once() -> None:
    loads: list[str] = []
    lock = threading.Lock()

    def counting_loader(deployment: ModelDeployment) -> LoadedModel:
        with lock:
            loads.append(deployment.name)
        return load_sentence_transformer(deployment)

    fresh = LocalEmbeddingProvider(packaged_minilm_deployment("minilm"), loader=counting_loader)
    try:
        results = await asyncio.gather(*(fresh.embed([f"text {i}"]) for i in range(6)))
    finally:
        await fresh.close()
    assert loads == ["minilm"]
    assert [len(r[0]) for r in results] == [384] * 6
    assert fresh.manager.state == "unloaded" and fresh.in_flight == 0  # closed, nothing left running


async def test_chat_requests_are_refused_as_a_client_error(provider: LocalEmbeddingProvider) -> None:
    request = ChatInput((ChatMessage("user", "hi"),))
    with pytest.raises(InvalidRequest, match="'all-MiniLM-L6-v2' is an embeddings model") as refused:
        await provider.complete(request)
    assert refused.value.param == "model"
    with pytest.raises(InvalidRequest, match="is an embeddings model"):
        await anext(provider.stream(request))


async def test_tokens_are_counted_with_its_own_tokenizer(provider: LocalEmbeddingProvider) -> None:
    # [CLS] hello world [SEP]
    assert await provider.token_ids(TextInput("hello world")) == [101, 7592, 2088, 102]
    assert await provider.count_tokens(TextInput("hello world")) == 4
    chat = ChatInput((ChatMessage("system", "hello"), ChatMessage("user", "world")))
    assert await provider.count_tokens(chat) == 6


async def test_the_provider_and_a_group_adapter_are_embedders(provider: LocalEmbeddingProvider) -> None:
    calls: list[tuple[str, list[str]]] = []

    async def embed_group(group: str, texts: Sequence[str]) -> list[list[float]]:
        calls.append((group, list(texts)))
        return [[1.0, 0.0] for _ in texts]

    adapter = GroupEmbedder(embed_group, "minilm")
    assert isinstance(provider, Embedder) and isinstance(adapter, Embedder)
    assert await adapter.embed(["a", "b"]) == [[1.0, 0.0], [1.0, 0.0]]
    assert calls == [("minilm", ["a", "b"])]


def test_packaged_deployment_is_an_offline_embeddings_entry() -> None:
    deployment = packaged_minilm_deployment()
    assert (deployment.name, deployment.provider, deployment.task) == (
        "all-MiniLM-L6-v2",
        "local",
        "embeddings",
    )
