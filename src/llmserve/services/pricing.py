"""Prices per 1,000 tokens, and exact costs.

A deployment's own ``pricing`` wins; otherwise a built-in table of well-known upstream models (list
prices in USD, per 1k tokens, as published by each provider); local models and unknown ones cost 0.
Costs are ``Decimal`` so that sums over millions of calls stay exact to the fraction of a cent.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from llmserve.config import ModelDeployment

THOUSAND = Decimal(1000)

# (input, output) USD per 1k tokens. Matched on the upstream model name, longest prefix first, so
# dated snapshots ("gpt-4o-2024-08-06") price like their family.
BUILTIN_PRICES: dict[str, tuple[str, str]] = {
    "gpt-4o-mini": ("0.00015", "0.0006"),
    "gpt-4o": ("0.0025", "0.01"),
    "gpt-4.1-nano": ("0.0001", "0.0004"),
    "gpt-4.1-mini": ("0.0004", "0.0016"),
    "gpt-4.1": ("0.002", "0.008"),
    "gpt-4-turbo": ("0.01", "0.03"),
    "gpt-3.5-turbo": ("0.0005", "0.0015"),
    "o1-mini": ("0.0011", "0.0044"),
    "o3-mini": ("0.0011", "0.0044"),
    "o1": ("0.015", "0.06"),
    "text-embedding-3-small": ("0.00002", "0"),
    "text-embedding-3-large": ("0.00013", "0"),
    "claude-3-5-haiku": ("0.0008", "0.004"),
    "claude-3-5-sonnet": ("0.003", "0.015"),
    "claude-3-7-sonnet": ("0.003", "0.015"),
    "claude-sonnet-4": ("0.003", "0.015"),
    "claude-opus-4": ("0.015", "0.075"),
    "claude-3-haiku": ("0.00025", "0.00125"),
    "claude-3-opus": ("0.015", "0.075"),
    "deepseek-chat": ("0.00027", "0.0011"),
    "deepseek-reasoner": ("0.00055", "0.00219"),
}
_BY_LENGTH = sorted(BUILTIN_PRICES, key=len, reverse=True)


def prices_for(deployment: ModelDeployment) -> tuple[Decimal, Decimal]:
    """(input, output) USD per 1k tokens for this deployment."""
    # Priced a few times per request (log line, settlement, ledger): the lookups are cached on the
    # deployment's plain values, not the deployment object, so an edited config is never priced stale.
    pricing = deployment.pricing
    if pricing is not None:
        return _configured(pricing.input_per_1k, pricing.output_per_1k)
    if deployment.provider == "local":
        return _FREE
    return _builtin(deployment.model)


_FREE = (Decimal(0), Decimal(0))


@lru_cache(maxsize=1024)
def _configured(input_per_1k: float, output_per_1k: float) -> tuple[Decimal, Decimal]:
    return Decimal(str(input_per_1k)), Decimal(str(output_per_1k))


@lru_cache(maxsize=1024)
def _builtin(upstream_model: str) -> tuple[Decimal, Decimal]:
    model = upstream_model.lower().rsplit("/", 1)[-1]
    for prefix in _BY_LENGTH:
        if model.startswith(prefix):
            price_in, price_out = BUILTIN_PRICES[prefix]
            return Decimal(price_in), Decimal(price_out)
    return _FREE


def cost_usd(deployment: ModelDeployment, prompt_tokens: int, completion_tokens: int) -> Decimal:
    price_in, price_out = prices_for(deployment)
    return (price_in * prompt_tokens + price_out * completion_tokens) / THOUSAND
