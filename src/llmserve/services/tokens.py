"""TokenService: token counts and cost estimates for a request before it is sent.

Counts come from the group's first deployment: a local model's own tokenizer over its own chat
template (exact, and the ids are returned too); a remote provider's estimate otherwise (no public
tokenizer for most upstream models), flagged ``estimated``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from llmserve.config import ModelDeployment
from llmserve.providers.base import Provider
from llmserve.providers.local_embeddings import LocalEmbeddingProvider
from llmserve.services.models import LocallyManaged, ModelRegistry
from llmserve.services.pricing import cost_usd
from llmserve.types import ChatInput, ChatMessage, GenerationInput, TextInput

if TYPE_CHECKING:
    from llmserve.guardrails import Guardrails


class Tokenized(NamedTuple):
    group: str
    tokens: list[int] | None  # None where only an estimate is known
    token_count: int  # not `count`: that is tuple.count
    estimated: bool


@dataclass(frozen=True)
class Estimate:
    group: str
    prompt_tokens: int
    max_completion_tokens: int
    estimated: bool
    context_window: int | None
    input_cost_usd: Decimal
    max_output_cost_usd: Decimal

    @property
    def max_total_cost_usd(self) -> Decimal:
        return self.input_cost_usd + self.max_output_cost_usd


class TokenService:
    def __init__(self, registry: ModelRegistry, guardrails: Guardrails | None = None) -> None:
        self.registry = registry
        self.guardrails = guardrails  # the count and size rules chat applies, checked before any work

    async def tokenize(
        self,
        model: str | None,
        *,
        messages: Sequence[ChatMessage] | None = None,
        prompt: str | None = None,
    ) -> Tokenized:
        """Tokens of a chat (``messages``, rendered with the chat template) or a raw ``prompt``."""
        if self.guardrails is not None:
            self.guardrails.check_size(messages, prompt)  # 413 / 400 as chat would answer
        request = _request(messages, prompt)
        group, deployment, provider = self._first_deployment(model, request)
        tokens = await _token_ids(provider, deployment, request)
        if tokens is not None:
            return Tokenized(group, tokens, len(tokens), False)
        return Tokenized(group, None, await provider.count_tokens(request), True)

    async def estimate(
        self,
        model: str | None,
        *,
        messages: Sequence[ChatMessage] | None = None,
        prompt: str | None = None,
        max_tokens: int | None = None,
    ) -> Estimate:
        """Prompt tokens and the most the request can cost: its prompt plus a reply of
        ``max_tokens`` (or what the deployment would allow without it)."""
        tokenized = await self.tokenize(model, messages=messages, prompt=prompt)
        group, deployment, provider = self._first_deployment(tokenized.group, None)
        window = await _context_window(provider, deployment)
        if deployment.task == "embeddings":
            completion = 0
        elif max_tokens is not None:
            completion = max_tokens
        else:
            # As the local provider does: the default, shrunk to the room the prompt leaves.
            completion = deployment.default_max_tokens
            if window is not None:
                completion = max(0, min(completion, window - tokenized.token_count))
        return Estimate(
            group=group,
            prompt_tokens=tokenized.token_count,
            max_completion_tokens=completion,
            estimated=tokenized.estimated,
            context_window=window,
            input_cost_usd=cost_usd(deployment, tokenized.token_count, 0),
            max_output_cost_usd=cost_usd(deployment, 0, completion),
        )

    def _first_deployment(
        self, model: str | None, request: GenerationInput | None
    ) -> tuple[str, ModelDeployment, Provider]:
        group = self.registry.group(self.registry.route_group(model, request, None))
        return group.name, group.deployments[0], group.providers[0]


def _request(messages: Sequence[ChatMessage] | None, prompt: str | None) -> GenerationInput:
    if messages is not None:
        return ChatInput(tuple(messages))
    return TextInput(prompt or "")


async def _token_ids(
    provider: Provider, deployment: ModelDeployment, request: GenerationInput
) -> list[int] | None:
    if isinstance(provider, LocalEmbeddingProvider):
        return await provider.token_ids(request)
    if isinstance(provider, LocallyManaged) and deployment.provider == "local":
        # Imported here: it pulls in torch, which a gateway-only install does not have.
        from llmserve.providers.local import prompt_ids

        return await prompt_ids(await provider.manager.get(), request)
    return None


async def _context_window(provider: Provider, deployment: ModelDeployment) -> int | None:
    if isinstance(provider, LocallyManaged):
        return (await provider.manager.get()).context_window
    return deployment.context_window
