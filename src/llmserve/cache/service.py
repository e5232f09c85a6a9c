"""The response cache the chat pipeline talks to: exact lookup, then semantic; store after answering.

A cache is an optimisation: when its store fails (Redis down, slow, full) a lookup is a miss and a store
is skipped, with a warning, and the cache stays out of the way for ``ERROR_BACKOFF_S`` so requests do not
each wait for a timeout. Answer bodies live once, in the store under their exact key; the semantic index
only maps a question's vector to that key.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from llmserve.cache.entries import CachedAnswer, CacheHit, CacheRequest, Embedder, VectorIndex
from llmserve.cache.keys import exact_key, is_cacheable, semantic_scope, semantic_text
from llmserve.cache.lexical import is_latin, same_question
from llmserve.cache.stores import CacheStore, MemoryStore, RedisStore
from llmserve.config import CacheSettings, Settings

if TYPE_CHECKING:
    from llmserve.observability.metrics import Metrics
    from llmserve.types import Completion

__all__ = ["CacheHit", "CacheRequest", "CachedAnswer", "ResponseCache", "build_cache"]

logger = logging.getLogger(__name__)

ERROR_BACKOFF_S = 5.0
# Vectors computed by a missed lookup, kept for the store that follows it (no second embedding).
MAX_PENDING_VECTORS = 1024
# Partial or filtered answers are not what a replay should return.
_UNREPLAYABLE = frozenset({"cancelled", "content_filter"})


class ResponseCache:
    def __init__(
        self,
        settings: CacheSettings,
        store: CacheStore,
        semantic: VectorIndex | None = None,
        embedder: Embedder | None = None,
        *,
        multilingual_embedder: bool = False,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._store = store
        self._semantic = semantic if settings.semantic.enabled and embedder is not None else None
        self._embedder = embedder
        # all-MiniLM-L6-v2 reads English: most CJK characters are one unknown token to it.
        self.multilingual_embedder = multilingual_embedder
        self._clock = clock
        self._pending: OrderedDict[str, list[float]] = OrderedDict()
        self._suspended_until = float("-inf")

    async def lookup(self, req: CacheRequest) -> CacheHit | None:
        if req.no_cache or not is_cacheable(req) or self._suspended():
            return None
        key = exact_key(req)
        try:
            if self.settings.exact.enabled:
                answer = await self._read(key)
                self._count("exact", answer is not None)
                if answer is not None:
                    return CacheHit(answer, "hit")
            return await self._semantic_lookup(req, key)
        except Exception as exc:  # a cache failure is a miss, never a failed request
            self._fail("lookup", exc)
            return None

    async def store(self, req: CacheRequest, answer: CachedAnswer) -> None:
        ttl = self._ttl(req)
        if req.no_store or ttl <= 0 or not is_cacheable(req) or not _replayable(answer.completion):
            return
        key = exact_key(req)
        vector = self._pending.pop(key, None)
        if self._suspended():
            return
        try:
            await self._store.set(key, answer.to_bytes(), ttl)
            if self._semantic is not None and (text := self._semantic_text(req)):
                vector = vector if vector is not None else await self._embed(text)
                if vector is not None:
                    sem_ttl = req.ttl if req.ttl is not None else self.settings.semantic.ttl
                    await self._semantic.add(self._scope(req), vector, key, sem_ttl, text)
        except Exception as exc:
            self._fail("store", exc)

    async def clear(self) -> None:
        """Forget every answer (admin). Errors propagate: the caller asked for this explicitly."""
        await self._store.clear()
        if self._semantic is not None:
            await self._semantic.clear()
        self._pending.clear()

    async def size(self) -> int:
        return await self._store.size()

    async def close(self) -> None:
        try:
            if self._semantic is not None:
                await self._semantic.close()
        finally:
            await self._store.close()

    async def _read(self, key: str) -> CachedAnswer | None:
        body = await self._store.get(key)
        if body is None:
            return None
        try:
            return CachedAnswer.from_bytes(body)
        except ValueError as exc:
            logger.warning("ignoring unreadable cache entry %s: %s", key, exc)
            return None

    async def _semantic_lookup(self, req: CacheRequest, key: str) -> CacheHit | None:
        if self._semantic is None or not (text := self._semantic_text(req)):
            return None
        vector = await self._embed(text)
        if vector is None:
            return None
        self._pending[key] = vector
        while len(self._pending) > MAX_PENDING_VECTORS:
            self._pending.popitem(last=False)
        match = await self._semantic.lookup(self._scope(req), vector, functools.partial(same_question, text))
        answer = None if match is None else await self._read(match.entry_id)
        self._count("semantic", answer is not None)
        if match is None or answer is None:
            return None
        return CacheHit(answer, "semantic-hit", match.similarity)

    def _count(self, cache_type: str, hit: bool) -> None:
        if self._metrics is not None:
            self._metrics.cache_result(cache_type, hit)

    def _semantic_text(self, req: CacheRequest) -> str:
        text = semantic_text(req)
        return text if self.multilingual_embedder or is_latin(text) else ""

    def _scope(self, req: CacheRequest) -> str:
        return semantic_scope(req, self.settings.semantic.embedding_model)

    async def _embed(self, text: str) -> list[float] | None:
        assert self._embedder is not None  # set whenever self._semantic is
        try:
            vectors: Sequence[Sequence[float]] = await self._embedder.embed([text])
        except Exception as exc:  # the embedder is a model, maybe remote: its failure is a miss too
            logger.warning("cache embedding failed, no semantic lookup: %r", exc)
            return None
        return list(vectors[0])

    def _ttl(self, req: CacheRequest) -> float:
        if req.ttl is not None:
            return req.ttl
        # One body serves both lookups: keep it as long as the longer-lived of them needs it.
        ttls = [self.settings.exact.ttl] if self.settings.exact.enabled else []
        if self._semantic is not None:
            ttls.append(self.settings.semantic.ttl)
        return max(ttls, default=0.0)

    def _suspended(self) -> bool:
        return self._clock() < self._suspended_until

    def _fail(self, operation: str, exc: Exception) -> None:
        self._suspended_until = self._clock() + ERROR_BACKOFF_S
        logger.warning(
            "response cache %s failed (%r); treating requests as misses for %.0f s",
            operation,
            exc,
            ERROR_BACKOFF_S,
        )


def _replayable(completion: Completion) -> bool:
    return bool(completion.choices) and all(
        choice.finish_reason not in _UNREPLAYABLE for choice in completion.choices
    )


def build_cache(
    settings: Settings, embedder: Embedder | None, *, metrics: Metrics | None = None
) -> ResponseCache | None:
    """The cache ``settings`` ask for: None when off, Redis-backed when a Redis URL is set."""
    config = settings.cache
    if not (config.exact.enabled or config.semantic.enabled):
        return None
    if config.semantic.enabled and embedder is None:
        raise ValueError(
            f"cache.semantic is enabled but no embedder was built for {config.semantic.embedding_model!r}"
        )
    # The semantic index maps to bodies in the store: the store must outlive the index's entries.
    bounds = [config.exact.max_entries] if config.exact.enabled else []
    if config.semantic.enabled:
        bounds.append(config.semantic.max_entries)
    prefix = f"{config.namespace}:cache"
    url = config.redis_url or settings.redis_url
    store: CacheStore
    semantic: VectorIndex | None = None
    if url:
        redis_store = RedisStore(url, prefix)
        store = redis_store
        if config.semantic.enabled:
            from llmserve.cache.semantic_redis import RedisSemanticIndex

            semantic = RedisSemanticIndex(
                redis_store.client,
                prefix,
                threshold=config.semantic.threshold,
                max_entries=config.semantic.max_entries,
            )
    else:
        store = MemoryStore(max(bounds))
        if config.semantic.enabled:
            from llmserve.cache.semantic import SemanticIndex

            semantic = SemanticIndex(config.semantic.threshold, config.semantic.max_entries)
    return ResponseCache(config, store, semantic, embedder, metrics=metrics)
