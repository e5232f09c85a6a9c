"""What happens around each call: context fitting before it, cache lookup and store, the ledger row.

ChatService calls these four steps; each is a no-op when its feature is off, so the pipeline reads
the same with the embedded defaults and with everything turned on.
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
    from llmserve.cache.keys import CacheRequest
    from llmserve.cache.semantic import Embedder
    from llmserve.cache.service import ResponseCache
    from llmserve.observability.metrics import Metrics
    from llmserve.services.usage import CacheStatus, UsageLedger

logger = logging.getLogger(__name__)


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

    async def fit(self, group: str, request: GenerationInput) -> GenerationInput:
        """History longer than the group's context: keep the system prompt and the latest turns
        (``context_strategy: truncate_oldest``), or leave it for the provider's 400 (``error``)."""
        if not isinstance(request, ChatInput):
            return request
        return await self.registry.fit_context(group, request)

    async def lookup(self, group: str, request: GenerationInput, ctx: RequestContext) -> CacheLookup | None:
        if self.cache is None:
            return None
        hit = await self.cache.lookup(_cache_request(group, request, ctx))
        if hit is None:
            return None
        return CacheLookup(hit.answer.model, hit.answer.completion, hit.kind, hit.similarity)

    async def remember(
        self,
        group: str,
        request: GenerationInput,
        ctx: RequestContext,
        completion: Completion,
        answered_by: str,
    ) -> None:
        if self.cache is None:
            return
        from llmserve.cache.service import CachedAnswer

        await self.cache.store(_cache_request(group, request, ctx), CachedAnswer.new(completion, answered_by))

    def billed(self, route: RouteInfo, usage: Usage, cache_status: str) -> tuple[Usage, Decimal]:
        """The tokens and cost a request is charged: nothing for a cache hit."""
        if cache_status != "miss":
            return Usage(0, 0), Decimal(0)
        deployment = self.registry.deployment_config(route.deployment)
        if deployment is None:
            return usage, Decimal(0)
        return usage, cost_usd(deployment, usage.prompt_tokens, usage.completion_tokens)

    async def charge(
        self, ctx: RequestContext, route: RouteInfo, usage: Usage, cache_status: str, latency_ms: float
    ) -> None:
        """One ledger row per answered request; a cache hit costs nothing."""
        billed, cost = self.billed(route, usage, cache_status)
        if self.metrics is not None:
            self.metrics.add_tokens(route.group, billed.prompt_tokens, billed.completion_tokens)
            self.metrics.add_cost(route.group, cost)
        if self.ledger is None:
            return
        from llmserve.services.usage import UsageRecord

        deployment = self.registry.deployment_config(route.deployment)
        await self.ledger.record(
            UsageRecord(
                request_id=ctx.request_id,
                api_key=ctx.api_key,
                model=route.group,
                deployment=route.deployment,
                provider=deployment.provider if deployment is not None else "cache",
                prompt_tokens=billed.prompt_tokens,
                completion_tokens=billed.completion_tokens,
                cost_usd=cost,
                cache_status=cast("CacheStatus", cache_status),
                latency_ms=latency_ms,
                tokens_estimated=usage.estimated,
            )
        )


def _cache_request(group: str, request: GenerationInput, ctx: RequestContext) -> CacheRequest:
    from llmserve.cache.keys import CacheRequest

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
