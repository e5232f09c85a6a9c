"""The one interface every backend implements (local engine, OpenAI-compatible, Anthropic)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from llmserve.types import Completion, GenerationInput, StreamEvent


@runtime_checkable
class Provider(Protocol):
    name: str

    async def complete(self, request: GenerationInput) -> Completion: ...

    def stream(self, request: GenerationInput) -> AsyncIterator[StreamEvent]:
        """Deltas for every choice, then one Usage for the whole request."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def count_tokens(self, request: GenerationInput) -> int: ...

    async def close(self) -> None: ...
