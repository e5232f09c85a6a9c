"""ModelRegistry: the model groups this process serves and the providers behind them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from llmserve.config import ModelDeployment, Settings
from llmserve.engine.manager import ModelManager
from llmserve.errors import ModelNotFound
from llmserve.providers.base import Provider


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
    def __init__(self, groups: Iterable[ModelGroup], default_model: str) -> None:
        self._groups = {group.name: group for group in groups}
        self.default_model = default_model
        self.managers: list[ModelManager] = [
            provider.manager
            for group in self._groups.values()
            for provider in group.providers
            if isinstance(provider, LocallyManaged)
        ]

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        created = int(time.time())
        by_name: dict[str, list[ModelDeployment]] = {}
        for deployment in settings.models:
            by_name.setdefault(deployment.name, []).append(deployment)
        groups = [
            ModelGroup(
                name,
                tuple(_build_provider(d, settings) for d in deployments),
                tuple(deployments),
                created,
            )
            for name, deployments in by_name.items()
        ]
        assert settings.default_model is not None  # filled in by Settings' validator
        return cls(groups, settings.default_model)

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

    def resolve(self, model: str | None) -> tuple[str, Provider]:
        """The group's name and the provider to call (the gateway issue puts a router here)."""
        group = self.group(model)
        return group.name, group.providers[0]

    async def close(self) -> None:
        for group in self._groups.values():
            for provider in group.providers:
                await provider.close()


def _build_provider(deployment: ModelDeployment, settings: Settings) -> Provider:
    if deployment.provider == "local":
        try:  # torch and transformers come with the `local` extra; a gateway-only install lacks them
            from llmserve.engine.worker import LocalEngine
            from llmserve.providers.local import LocalProvider
        except ImportError as exc:
            raise UnsupportedProvider(
                f"models entry '{deployment.name}': provider 'local' needs the local extra "
                f"(pip install 'llmserve[local]'): {exc}"
            ) from exc
        engine = LocalEngine(ModelManager(deployment), settings.engine.max_queued_requests)
        return LocalProvider(deployment, engine)
    raise UnsupportedProvider(
        f"models entry '{deployment.name}': provider '{deployment.provider}' is not available in this build "
        "(only 'local' is)"
    )
