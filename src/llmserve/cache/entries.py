"""What the cache is asked, what it keeps, and what it answers with."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import orjson

from llmserve.types import ChatMessage, Choice, Completion, GenerationOptions, Usage

CacheKind = Literal["hit", "semantic-hit"]

# Bumped when the stored layout changes; older bodies then read as misses, never as wrong answers.
ANSWER_FORMAT = 1


@dataclass(frozen=True)
class CacheRequest:
    """One request as the cache sees it; ``messages`` for chat, ``prompt`` for raw completions."""

    group: str
    tenant: str
    messages: tuple[ChatMessage, ...] | None
    prompt: str | None
    options: GenerationOptions = field(default_factory=GenerationOptions)
    namespace: str | None = None
    no_cache: bool = False
    no_store: bool = False
    ttl: float | None = None
    opt_in: bool = False  # the body carried a ``cache`` object: the client asks for replays
    # Keys derived from this request, computed once: the lookup and the store of one call share them.
    derived_keys: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class CachedAnswer:
    completion: Completion
    model: str  # the group that answered
    created: float  # unix time of the original answer

    @classmethod
    def new(cls, completion: Completion, model: str) -> CachedAnswer:
        return cls(completion, model, time.time())

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "format": ANSWER_FORMAT,
                "model": self.model,
                "created": self.created,
                "choices": [
                    {
                        "index": choice.index,
                        "text": choice.text,
                        "finish_reason": choice.finish_reason,
                        "tool_calls": list(choice.tool_calls),
                    }
                    for choice in self.completion.choices
                ],
                "usage": {
                    "prompt_tokens": self.completion.usage.prompt_tokens,
                    "completion_tokens": self.completion.usage.completion_tokens,
                    "estimated": self.completion.usage.estimated,
                },
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CachedAnswer:
        """Raises ``ValueError`` for anything this version did not write."""
        try:
            body = orjson.loads(data)
            if body["format"] != ANSWER_FORMAT:
                raise ValueError(f"cached answer format {body['format']!r}")
            choices = [_choice(raw) for raw in body["choices"]]
            raw_usage = body["usage"]
            usage = Usage(
                int(raw_usage["prompt_tokens"]),
                int(raw_usage["completion_tokens"]),
                estimated=bool(raw_usage.get("estimated", False)),
            )
            return cls(Completion(choices, usage), str(body["model"]), float(body["created"]))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable cached answer: {exc!r}") from exc


def _choice(raw: dict[str, Any]) -> Choice:
    return Choice(
        index=int(raw["index"]),
        text=str(raw["text"]),
        finish_reason=raw["finish_reason"],
        tool_calls=tuple(raw["tool_calls"]),
    )


@dataclass(frozen=True)
class CacheHit:
    answer: CachedAnswer
    kind: CacheKind
    similarity: float | None = None  # cosine similarity of a semantic hit


class Embedder(Protocol):
    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class Match(NamedTuple):
    entry_id: str
    similarity: float


class VectorIndex(Protocol):
    """A semantic index: in process (``SemanticIndex``) or shared through Redis (``RedisSemanticIndex``)."""

    async def lookup(
        self, scope: str, vector: Sequence[float], accept: Callable[[str], bool] | None = None
    ) -> Match | None: ...

    async def add(
        self, scope: str, vector: Sequence[float], entry_id: str, ttl: float, text: str = ""
    ) -> None: ...

    async def clear(self) -> None: ...

    async def close(self) -> None: ...
