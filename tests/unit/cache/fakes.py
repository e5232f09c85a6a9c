"""Hand-written helpers for the cache tests: request builders, embedders, a clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmserve.cache.entries import CachedAnswer, CacheRequest
from llmserve.config import CacheSettings
from llmserve.types import ChatMessage, Choice, Completion, GenerationOptions, Usage

# One tool, and the same tool with its keys in another order (a cache key must not tell them apart).
TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "required": []}}}
TOOL_REORDERED = {
    "function": {"parameters": {"required": [], "type": "object"}, "name": "weather"},
    "type": "function",
}


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ModelEmbedder:
    """An ``Embedder`` over a sentence-transformers model (the product's own adapter lives elsewhere)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        vectors = self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return [[float(value) for value in vector] for vector in vectors]

    def embed_now(self, texts: Sequence[str]) -> dict[str, list[float]]:
        vectors = self.model.encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, batch_size=64
        )
        return {text: [float(value) for value in vector] for text, vector in zip(texts, vectors, strict=True)}


class TableEmbedder:
    """Vectors looked up in a table (precomputed or made up); counts calls; can be told to fail."""

    def __init__(self, table: dict[str, list[float]] | None = None) -> None:
        self.table = dict(table or {})
        self.calls = 0
        self.error: Exception | None = None

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return [self.table[text] for text in texts]


def chat(
    text: str,
    *,
    system: str | None = None,
    history: Sequence[tuple[str, str]] = (),
    tenant: str = "tenant-a",
    group: str = "gpt-small",
    namespace: str | None = None,
    options: GenerationOptions | None = None,
    **flags: Any,
) -> CacheRequest:
    """A chat request as the pipeline would build it; temperature 0 (cacheable) unless told otherwise."""
    messages = [ChatMessage("system", system)] if system is not None else []
    messages += [ChatMessage(role, content) for role, content in history]
    messages.append(ChatMessage("user", text))
    return CacheRequest(
        group=group,
        tenant=tenant,
        messages=tuple(messages),
        prompt=None,
        options=options or GenerationOptions(temperature=0.0),
        namespace=namespace,
        **flags,
    )


def answer(text: str, *, model: str = "gpt-small", finish_reason: Any = "stop") -> CachedAnswer:
    return CachedAnswer(Completion([Choice(0, text, finish_reason)], Usage(7, 3)), model, 1_700_000_000.0)


def cache_settings(
    *, exact: bool = True, semantic: bool = False, threshold: float | None = None, **exact_fields: Any
) -> CacheSettings:
    semantic_fields: dict[str, Any] = {"enabled": semantic}
    if threshold is not None:
        semantic_fields["threshold"] = threshold
    return CacheSettings.model_validate(
        {"exact": {"enabled": exact, **exact_fields}, "semantic": semantic_fields}
    )
