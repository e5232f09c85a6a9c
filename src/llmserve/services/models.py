"""ModelRegistry: the model groups this process serves and the providers behind them."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llmserve.config import ModelDeployment, Settings, deployment_id_of
from llmserve.engine.manager import ModelManager
from llmserve.errors import LLMServeError, ModelNotFound, NoDeploymentAvailable
from llmserve.providers.base import Provider
from llmserve.providers.http import UpstreamHTTP
from llmserve.routing.breaker import CircuitBreaker, is_breaker_fault
from llmserve.routing.deployment import Deployment, DeploymentStats
from llmserve.routing.retry import is_retryable
from llmserve.routing.router import Router
from llmserve.types import ChatInput, ChatMessage, GenerationInput

if TYPE_CHECKING:
    from llmserve.observability.metrics import Metrics

AUTO_MODEL = "auto"


@runtime_checkable
class LocallyManaged(Protocol):
    """A provider whose weights live in this process (health, preload and idle unload look at it)."""

    @property
    def manager(self) -> ModelManager: ...

    @property
    def in_flight(self) -> int:
        """Generations queued or running; 0 means the model's worker is idle."""
        ...


class UnsupportedProvider(Exception):
    """A config names a provider this build cannot serve; raised at start, never per request."""


@dataclass(frozen=True)
class ModelGroup:
    name: str
    providers: tuple[Provider, ...]
    deployments: tuple[ModelDeployment, ...]
    created: int

    @property
    def owned_by(self) -> str:
        return (
            "llmserve"
            if all(d.provider == "local" for d in self.deployments)
            else self.deployments[0].provider
        )


class ModelRegistry:
    def __init__(self, groups: Iterable[ModelGroup], default_model: str, router: Router) -> None:
        self._groups = {group.name: group for group in groups}
        self.default_model = default_model
        self.router = router
        self.managers: list[ModelManager] = [
            provider.manager
            for group in self._groups.values()
            for provider in group.providers
            if isinstance(provider, LocallyManaged)
        ]

    @classmethod
    def from_settings(
        cls, settings: Settings, http: UpstreamHTTP, *, metrics: Metrics | None = None
    ) -> ModelRegistry:
        created = int(time.time())
        routed: dict[str, list[Deployment]] = {}
        for index, entry in enumerate(settings.models):
            deployment_id = deployment_id_of(entry, index)
            routed.setdefault(entry.name, []).append(
                Deployment(
                    id=deployment_id,
                    group=entry.name,
                    config=entry,
                    provider=_build_provider(entry, settings, http, deployment_id),
                    stats=DeploymentStats(alpha=settings.router.latency_ewma_alpha),
                    breaker=CircuitBreaker(settings.router.circuit_breaker),
                )
            )
        groups = [
            ModelGroup(
                name,
                tuple(d.provider for d in deployments),
                tuple(d.config for d in deployments),
                created,
            )
            for name, deployments in routed.items()
        ]
        assert settings.default_model is not None  # filled in by Settings' validator
        return cls(groups, settings.default_model, Router(routed, settings.router, metrics=metrics))

    def in_flight(self) -> dict[str, int]:
        """Per model group: generations queued or running on this process's local models."""
        counts: dict[str, int] = {}
        for group in self._groups.values():
            for provider in group.providers:
                if isinstance(provider, LocallyManaged):
                    counts[group.name] = counts.get(group.name, 0) + provider.in_flight
        return counts

    def groups(self) -> list[ModelGroup]:
        return list(self._groups.values())

    def group(self, model: str | None) -> ModelGroup:
        name = model or self.default_model
        group = self._groups.get(name)
        if group is None:
            raise ModelNotFound(
                f"The model '{name}' does not exist or you do not have access to it.", param="model"
            )
        return group

    def route_group(
        self, model: str | None, request: GenerationInput | None, requirements: str | None
    ) -> str:
        """The group a request goes to: the one it names, the default, or for ``auto`` (unless a group
        is called that) the tier complexity routing picks."""
        name = model or self.default_model
        if name == AUTO_MODEL and name not in self._groups and request is not None:
            name = self.router.resolve_group(name, request, requirements, self.default_model)
        return self.group(name).name

    def deployment_config(self, deployment_id: str) -> ModelDeployment | None:
        for group in self._groups:
            for deployment in self.router.deployments(group):
                if deployment.id == deployment_id:
                    return deployment.config
        return None

    async def fit_context(
        self, group: str, request: ChatInput, *, stored_history: bool = False
    ) -> tuple[ChatInput, int]:
        """Drops the oldest turns when the history does not fit (``context_strategy: truncate_oldest``,
        and always for a stored conversation's history, which would otherwise stop working for good
        once it outgrew the window); returns the request and how many messages were dropped.

        The tightest window among the group's truncating deployments decides, since any of them may
        answer; a remote deployment without ``context_window`` has no known window and is skipped.
        """
        from llmserve.services.context import completion_reserve, fit_messages

        fitted, dropped = request, 0
        for deployment in self.router.deployments(group):
            config = deployment.config
            if config.context_strategy != "truncate_oldest" and not stored_history:
                continue
            window = config.context_window
            if window is None and isinstance(deployment.provider, LocallyManaged):
                window = (await deployment.provider.manager.get()).context_window
            if window is None:
                continue
            provider = deployment.provider

            async def count(messages: Sequence[ChatMessage], provider: Provider = provider) -> int:
                return await provider.count_tokens(ChatInput(tuple(messages), request.options))

            reserve = completion_reserve(
                request.options.max_tokens,
                config.default_max_tokens,
                window,
                clamp=request.options.clamp_max_tokens,
            )
            messages, cut = await fit_messages(fitted.messages, count, window, reserve, "truncate_oldest")
            fitted, dropped = ChatInput(tuple(messages), request.options), dropped + cut
        return fitted, dropped

    async def embed(self, group: str, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings from the first deployment of the group whose breaker lets the call through."""
        last: LLMServeError | None = None
        for deployment in self.router.deployments(group):
            if not deployment.breaker.allow():
                continue
            try:
                vectors = await deployment.provider.embed(texts)
            except LLMServeError as exc:
                last = exc
                if is_breaker_fault(exc):
                    deployment.breaker.record_failure()
                else:
                    deployment.breaker.release()
                if is_retryable(exc):
                    continue
                raise
            except BaseException:
                deployment.breaker.release()
                raise
            deployment.breaker.record_success()
            return vectors
        raise last or NoDeploymentAvailable(f"No deployment of '{group}' is available right now")

    async def close(self) -> None:
        for group in self._groups.values():
            for provider in group.providers:
                await provider.close()


def check_buildable(settings: Settings) -> None:
    """Raises UnsupportedProvider when this install cannot serve an entry (checked before binding)."""
    for entry in settings.models:
        if entry.provider == "local" and entry.task == "embeddings":
            from llmserve.providers.local_embeddings import INSTALL_HINT, missing_packages

            if missing := missing_packages(entry):
                raise UnsupportedProvider(
                    f"models entry '{entry.name}': a local embeddings model needs the embeddings extra "
                    f"({INSTALL_HINT}); missing: {', '.join(missing)}"
                )
        elif entry.provider == "local":
            _import_local(entry)
            _refuse_missing_path(entry)


def _refuse_missing_path(deployment: ModelDeployment) -> None:
    from llmserve.engine.loader import missing_local_path

    if missing_local_path(deployment.model):
        raise UnsupportedProvider(
            f"models entry '{deployment.name}': model path '{deployment.model}' does not exist "
            "(a local path must exist on this machine; a hub id looks like org/name)"
        )


def _import_local(deployment: ModelDeployment) -> tuple[type[Any], type[Any]]:
    try:  # torch and transformers come with the `local` extra; a gateway-only install lacks them
        from llmserve.engine.worker import LocalEngine
        from llmserve.providers.local import LocalProvider
    except ImportError as exc:
        raise UnsupportedProvider(
            f"models entry '{deployment.name}': provider 'local' needs the local extra "
            f"(pip install 'llmserve[local]'): {exc}"
        ) from exc
    return LocalEngine, LocalProvider


def _build_provider(
    deployment: ModelDeployment, settings: Settings, http: UpstreamHTTP, deployment_id: str
) -> Provider:
    if deployment.provider == "local" and deployment.task == "embeddings":
        # Not the chat engine: a sentence-transformers model, loaded on first use.
        from llmserve.providers.local_embeddings import LocalEmbeddingProvider

        return LocalEmbeddingProvider(deployment)
    if deployment.provider == "local":
        LocalEngine, LocalProvider = _import_local(deployment)
        import torch

        from llmserve.engine.offload import engine_threads

        torch.set_num_threads(engine_threads(settings.engine.threads))  # one core left to the loop
        engine = LocalEngine(
            ModelManager(deployment),
            settings.engine.max_queued_requests,
            settings.engine.max_batch_size,
            settings.engine.max_wait_ms,
            request_timeout_s=settings.engine.request_timeout_seconds,
        )
        provider: Provider = LocalProvider(deployment, engine)
        return provider
    if deployment.provider == "openai":
        from llmserve.providers.openai_compat import OpenAIProvider

        return OpenAIProvider(deployment, http, deployment_id)
    from llmserve.providers.anthropic import AnthropicProvider

    return AnthropicProvider(deployment, http, deployment_id)
