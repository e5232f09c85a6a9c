"""Exact and semantic response caches over pluggable stores (in process, or Redis for replicas).

``SemanticIndex`` and ``RedisSemanticIndex`` need numpy and are imported on first use, so a gateway
install without it can still use the exact cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmserve.cache.entries import (
    CachedAnswer,
    CacheHit,
    CacheKind,
    CacheRequest,
    Embedder,
    Match,
    VectorIndex,
)
from llmserve.cache.keys import exact_key, is_cacheable, semantic_scope, semantic_text
from llmserve.cache.service import ResponseCache, build_cache
from llmserve.cache.stores import CacheStore, MemoryStore, RedisStore

if TYPE_CHECKING:
    from llmserve.cache.semantic import SemanticIndex
    from llmserve.cache.semantic_redis import RedisSemanticIndex

__all__ = [
    "CacheHit",
    "CacheKind",
    "CacheRequest",
    "CacheStore",
    "CachedAnswer",
    "Embedder",
    "Match",
    "MemoryStore",
    "RedisSemanticIndex",
    "RedisStore",
    "ResponseCache",
    "SemanticIndex",
    "VectorIndex",
    "build_cache",
    "exact_key",
    "is_cacheable",
    "semantic_scope",
    "semantic_text",
]


def __getattr__(name: str) -> Any:
    if name == "SemanticIndex":
        from llmserve.cache.semantic import SemanticIndex

        return SemanticIndex
    if name == "RedisSemanticIndex":
        from llmserve.cache.semantic_redis import RedisSemanticIndex

        return RedisSemanticIndex
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
