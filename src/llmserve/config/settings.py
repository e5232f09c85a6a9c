"""The root of the settings tree and how it is loaded: defaults < YAML file < ``LLMSERVE_*``
environment < CLI flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from llmserve.config.cache import CacheSettings
from llmserve.config.guardrails import GuardrailSettings
from llmserve.config.jobs import JobSettings
from llmserve.config.limits import LimitSettings, QueueSettings, UsageSettings
from llmserve.config.models import EngineSettings, ModelDeployment, bundled_models, deployment_id_of
from llmserve.config.observability import ObservabilitySettings
from llmserve.config.routing import RouterSettings
from llmserve.config.secrets import resolve_secret
from llmserve.config.server import AuthSettings, ServerSettings

SQLITE_FILENAME = "llmserve.db"


def default_data_dir() -> Path:
    """XDG data home, so a plain ``llmserve serve`` keeps history between runs without flags."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llmserve"


def sqlite_url_for(data_dir: Path) -> str:
    """The embedded default database: a SQLite file in ``data_dir``, as an absolute async URL."""
    return f"sqlite+aiosqlite:///{data_dir.expanduser().resolve() / SQLITE_FILENAME}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LLMSERVE_",
        env_nested_delimiter="__",
        extra="forbid",
        yaml_file=None,
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(None, description="Default: SQLite file in data_dir")
    server: ServerSettings = Field(default_factory=ServerSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    usage: UsageSettings = Field(default_factory=UsageSettings)
    redis_url: str | None = Field(None, description="Shared state for replicas (cache, limits, ...)")
    master_key: SecretStr | None = Field(
        None, description="Turns authentication on (env LLMSERVE_MASTER_KEY); env:NAME reads $NAME"
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    models: list[ModelDeployment] = Field(default_factory=bundled_models, min_length=1)
    default_model: str | None = Field(None, description="Group answering requests without 'model'")

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _check_default_model(self) -> Settings:
        names = [entry.name for entry in self.models]
        if self.default_model is None:
            # A request without ``model`` is a chat: the first chat group answers it, not an
            # embeddings model that happens to be listed first.
            chat = [entry.name for entry in self.models if entry.task != "embeddings"]
            self.default_model = (chat or names)[0]
        elif self.default_model not in names:
            raise ValueError(
                f"default_model {self.default_model!r} is not one of the models: {sorted(set(names))}"
            )
        return self

    @field_validator("master_key")
    @classmethod
    def _resolve_master_key(cls, value: SecretStr | None) -> SecretStr | None:
        return resolve_secret("master_key", value)

    @model_validator(mode="after")
    def _check_routing(self) -> Settings:
        names = {entry.name for entry in self.models}
        routes = {**self.router.fallbacks, **self.router.context_window_fallbacks}
        for group, targets in routes.items():
            for name in [group, *targets]:
                if name not in names:
                    raise ValueError(f"router fallbacks name {name!r}, which is not one of the models")
        tiers = self.router.complexity
        for tier in ("simple", "medium", "complex", "low_latency", "high_quality"):
            target = getattr(tiers, tier)
            if target is not None and target not in names:
                raise ValueError(f"router.complexity.{tier} names {target!r}, which is not one of the models")
        seen: set[str] = set()
        for index, entry in enumerate(self.models):
            deployment_id = deployment_id_of(entry, index)
            if deployment_id in seen:
                raise ValueError(f"two models entries have the id {deployment_id!r}")
            seen.add(deployment_id)
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production" and any(m.trust_remote_code for m in self.models):
            # Remote code runs with the server's rights; production must opt out of this explicitly.
            raise ValueError("trust_remote_code is refused when environment is 'production'")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or sqlite_url_for(self.data_dir)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # yaml_file is None on Settings itself; load_settings() sets it on a per-call subclass.
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))


class ConfigError(Exception):
    """A config file or value is invalid; the message names the offending field."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings; ``overrides`` (CLI flags) win over env, env wins over the YAML file."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file not found: {config_file}")
    settings_cls: type[Settings] = Settings
    if config_file is not None:
        # A subclass per call carries the file path; pydantic-settings reads it from model_config.
        settings_cls = type(
            "FileSettings", (Settings,), {"model_config": {**Settings.model_config, "yaml_file": config_file}}
        )
    try:
        return settings_cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, config_file)) from exc
    except (OSError, ValueError, yaml.YAMLError) as exc:  # unreadable file or broken YAML
        raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc


def describe_validation_error(exc: Any, config_file: Path | None) -> str:
    where = f" in {config_file}" if config_file else ""
    lines = [f"invalid configuration{where}:"]
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(root)"
        lines.append(f"  {field}: {error['msg']}")
    return "\n".join(lines)
