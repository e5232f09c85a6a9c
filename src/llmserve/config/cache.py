"""The answer cache: exact matches and semantically similar prompts, in process or shared in Redis."""

from __future__ import annotations

from pydantic import Field

from llmserve.config.base import StrictModel


class ExactCacheSettings(StrictModel):
    enabled: bool = False
    ttl: float = Field(3600.0, gt=0, description="Seconds an answer stays cached")
    max_entries: int = Field(10_000, gt=0, description="In-process store bound (LRU beyond it)")


class SemanticCacheSettings(StrictModel):
    enabled: bool = False
    threshold: float = Field(
        0.88, gt=0, le=1, description="Cosine similarity a hit needs (with the lexical check on top)"
    )
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="The packaged all-MiniLM-L6-v2, or the name of an embeddings model group",
    )
    ttl: float = Field(3600.0, gt=0)
    max_entries: int = Field(100_000, gt=0)


class CacheSettings(StrictModel):
    exact: ExactCacheSettings = Field(default_factory=ExactCacheSettings)
    semantic: SemanticCacheSettings = Field(default_factory=SemanticCacheSettings)
    redis_url: str | None = Field(None, description="Share the cache between replicas (default: redis_url)")
    namespace: str = Field("llmserve", description="Prefix of every cache key in Redis")
