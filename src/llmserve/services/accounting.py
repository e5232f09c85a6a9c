"""What happens around each call: context fitting before it, cache lookup and store, the bill and the
ledger row after it.

The pipeline (services/chat/) calls these steps; each is a no-op when its feature is off, so the
pipeline reads the same with the embedded defaults and with everything turned on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, cast

from llmserve.config import ModelDeployment, Settings
from llmserve.providers.base import Provider
from llmserve.request_context import RequestContext
from llmserve.routing.route_info import RouteInfo
from llmserve.services.models import ModelRegistry
from llmserve.services.pricing import cost_usd
from llmserve.types import ChatInput, Completion, GenerationInput, Usage

if TYPE_CHECKING:
    from llmserve.cache.entries import CacheRequest
    from llmserve.cache.semantic import Embedder
    from llmserve.cache.service import ResponseCache
    from llmserve.observability.metrics import Metrics
    from llmserve.services.usage import CacheStatus, UsageLedger

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bill:
    """What one request is charged, computed once and used by admission, the ledger and the logs."""

    usage: Usage  # the tokens billed: zero for a cache hit
    cost: Decimal
    provider: str  # the deployment's provider kind, or "cache"
    estimated: bool = False  # the upstream reported no usage: the counts are estimates


@dataclass(frozen=True)
class CacheLookup:
    group: str  # the group whose answer this is
    completion: Completion
    kind: str  # hit | semantic-hit
    similarity: float | None


class Accounting:
    def __init__(
        self,
        registry: ModelRegistry,
        cache: ResponseCache | None = None,
        ledger: UsageLedger | None = None,
        owned: Sequence[Provider] = (),
        metrics: Metrics | None = None,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.ledger = ledger
        self.metrics = metrics
        self._owned = owned  # e.g. the cache's own embedding model, closed with it

    @classmethod
    def build(
        cls,
        settings: Settings,
        registry: ModelRegistry,
        ledger: UsageLedger | None,
        *,
        metrics: Metrics | None = None,
    ) -> Accounting:
        """The cache the settings ask for, with its embedder: an embeddings model group named by
        ``cache.semantic.embedding_model`` (through its breakers), else a local sentence-embedding model
        (the packaged all-MiniLM-L6-v2 by default) that the cache owns."""
        from llmserve.cache.service import build_cache

        embedder: Embedder | None = None
        owned: list[Provider] = []
        if settings.cache.semantic.enabled:
            from llmserve.providers.local_embeddings import (
                GroupEmbedder,
                LocalEmbeddingProvider,
                is_packaged_minilm,
                packaged_minilm_deployment,
            )

            name = settings.cache.semantic.embedding_model
            if name in {group.name for group in registry.groups()}:
                embedder = GroupEmbedder(registry.embed, name)
            else:
                deployment = (
                    packaged_minilm_deployment()
                    if is_packaged_minilm(name)
                    else ModelDeployment(name="cache-embedder", model=name, task="embeddings")
                )
                provider = LocalEmbeddingProvider(deployment)
                embedder, owned = provider, [provider]
        return cls(registry, build_cache(settings, embedder, metrics=metrics), ledger, owned, metrics)

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        for provider in self._owned:
            await provider.close()

    async def fit(
        self, group: str, request: GenerationInput, *, stored_history: bool = False
    ) -> tuple[GenerationInput, int]:
        """History longer than the group's context: keep the system prompt and the latest turns
        (``context_strategy: truncate_oldest``, and always for a stored conversation), or leave it
        for the provider's 400 (``error``). Also returns how many messages were dropped."""
        if not isinstance(request, ChatInput):
            return request, 0
        return await self.registry.fit_context(group, request, stored_history=stored_history)

    def cache_request(self, group: str, request: GenerationInput, ctx: RequestContext) -> CacheRequest | None:
        """The request as the cache sees it, built once per call (None: no cache on this server)."""
        return None if self.cache is None else _cache_request(group, request, ctx)

    async def lookup(self, cached: CacheRequest | None) -> CacheLookup | None:
        if self.cache is None or cached is None:
            return None
        hit = await self.cache.lookup(cached)
        if hit is None:
            return None
        return CacheLookup(hit.answer.model, hit.answer.completion, hit.kind, hit.similarity)

    async def remember(self, cached: CacheRequest | None, completion: Completion, answered_by: str) -> None:
        if self.cache is None or cached is None:
            return
        from llmserve.cache.service import CachedAnswer

        await self.cache.store(cached, CachedAnswer.new(completion, answered_by))

    def bill(self, route: RouteInfo, usage: Usage, cache_status: str) -> Bill:
        """The tokens and cost a request is charged: nothing for a cache hit."""
        deployment = self.registry.deployment_config(route.deployment)
        provider = deployment.provider if deployment is not None else "cache"
        if cache_status != "miss":
            return Bill(Usage(0, 0), Decimal(0), provider, usage.estimated)
        if deployment is None:
            return Bill(usage, Decimal(0), provider, usage.estimated)
        cost = cost_usd(deployment, usage.prompt_tokens, usage.completion_tokens)
        return Bill(usage, cost, provider, usage.estimated)

    async def charge(
        self, ctx: RequestContext, route: RouteInfo, bill: Bill, cache_status: str, latency_ms: float
    ) -> None:
        """One ledger row per answered request, and the token and cost counters."""
        if self.metrics is not None:
            self.metrics.add_tokens(route.group, bill.usage.prompt_tokens, bill.usage.completion_tokens)
            self.metrics.add_cost(route.group, bill.cost)
        if self.ledger is None:
            return
        from llmserve.services.usage import UsageRecord

        await self.ledger.record(
            UsageRecord(
                request_id=ctx.request_id,
                api_key=ctx.api_key,
                model=route.group,
                deployment=route.deployment,
                provider=bill.provider,
                prompt_tokens=bill.usage.prompt_tokens,
                completion_tokens=bill.usage.completion_tokens,
                cost_usd=bill.cost,
                cache_status=cast("CacheStatus", cache_status),
                latency_ms=latency_ms,
                tokens_estimated=bill.estimated,
            )
        )


def _cache_request(group: str, request: GenerationInput, ctx: RequestContext) -> CacheRequest:
    from llmserve.cache.entries import CacheRequest

    is_chat = isinstance(request, ChatInput)
    return CacheRequest(
        group=group,
        tenant=ctx.tenant,
        messages=request.messages if isinstance(request, ChatInput) else None,
        prompt=None if is_chat else getattr(request, "prompt", None),
        options=request.options,
        namespace=ctx.cache_namespace,
        no_cache=ctx.no_cache,
        no_store=ctx.no_store,
        ttl=ctx.cache_ttl,
        opt_in=ctx.cache_opt_in,
    )
