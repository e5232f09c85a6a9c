"""One settings tree: defaults < YAML file < ``LLMSERVE_*`` environment < CLI flags.

Everything the process needs is read here once and handed to ``create_app(settings)``; nothing else
reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

BUNDLED_MODEL_ID = "tiny-chat"
DEFAULT_PORT = 8888

ProviderKind = Literal["local", "openai", "anthropic"]


def default_data_dir() -> Path:
    """XDG data home, so a plain ``llmserve serve`` keeps history between runs without flags."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llmserve"


class _Strict(BaseModel):
    # Typos in a config file must be loud: an unknown key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class Pricing(_Strict):
    input_per_1k: float = Field(0.0, ge=0)
    output_per_1k: float = Field(0.0, ge=0)


class ModelDeployment(_Strict):
    """One ``models:`` entry. Entries sharing a ``name`` are deployments of one model group."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/@-]+$")
    provider: ProviderKind = "local"
    model: str = Field(
        min_length=1, description="HF id or local path, 'tiny-chat', or the upstream model name"
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    trust_remote_code: bool = False
    context_window: int | None = Field(None, gt=0, description="Overrides the model's own limit")
    default_max_tokens: int = Field(512, gt=0, description="Used when a request names no max_tokens")
    idle_unload_seconds: float | None = Field(None, gt=0, description="Unload a local model idle this long")
    task: Literal["chat", "embeddings"] = Field(
        "chat", description="embeddings: a local sentence-embedding model (e.g. all-MiniLM-L6-v2)"
    )
    context_strategy: Literal["truncate_oldest", "error"] = Field(
        "error", description="History longer than the context: drop the oldest turns, or answer 400"
    )
    id: str | None = Field(
        None, min_length=1, max_length=128, description="Names this deployment in headers and /admin"
    )
    # Remote providers.
    api_base: str | None = None
    api_key: SecretStr | None = Field(None, description="The key itself, or env:NAME to read $NAME at start")
    api_version: str | None = Field(None, description="anthropic-version header (default 2023-06-01)")
    timeout: float = Field(60.0, gt=0, description="Whole non-streamed call, seconds")
    connect_timeout: float = Field(5.0, gt=0)
    first_token_timeout: float | None = Field(
        None, gt=0, description="Seconds to the first streamed token (default: timeout)"
    )
    stream_idle_timeout: float | None = Field(
        None, gt=0, description="Longest gap between streamed tokens (default: timeout)"
    )
    weight: float = Field(1.0, gt=0)
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, gt=0)
    pricing: Pricing | None = None

    @model_validator(mode="after")
    def _remote_needs_base(self) -> ModelDeployment:
        if self.provider == "openai" and not self.api_base:
            raise ValueError("provider 'openai' needs api_base (e.g. http://127.0.0.1:8000/v1)")
        return self

    @field_validator("api_key")
    @classmethod
    def _resolve_env_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if raw.startswith("env:"):
            name = raw[len("env:") :]
            if not os.environ.get(name):
                raise ValueError(f"api_key names the environment variable {name}, which is not set")
            return SecretStr(os.environ[name])
        return value


class CircuitBreakerSettings(_Strict):
    failure_threshold: int = Field(5, gt=0, description="Consecutive failures that open the breaker")
    error_rate_threshold: float = Field(
        0.5, gt=0, le=1, description="Share of failed calls in the window that opens it"
    )
    window_seconds: float = Field(30.0, gt=0)
    min_calls: int = Field(10, gt=0, description="Calls in the window before the error rate counts")
    cooldown_seconds: float = Field(15.0, gt=0, description="Open this long, then one half-open probe")


class ComplexityRouting(_Strict):
    """Where requests for the model ``auto`` go, by how hard they look (the seed's complexity routing)."""

    simple: str | None = None
    medium: str | None = None
    complex: str | None = None
    low_latency: str | None = Field(None, description="For requirements: low_latency")
    high_quality: str | None = Field(None, description="For requirements: high_quality")
    long_prompt_chars: int = Field(2000, gt=0, description="Longer prompts count as complex")
    short_prompt_chars: int = Field(200, gt=0, description="Shorter prompts without keywords are simple")
    complex_keywords: list[str] = Field(
        default_factory=lambda: [
            "analyze",
            "analyse",
            "prove",
            "explain why",
            "step by step",
            "compare",
            "design",
            "refactor",
            "derive",
            "分析",
            "证明",
            "为什么",
            "比较",
            "设计",
            "推导",
        ]
    )


class RouterSettings(_Strict):
    strategy: Literal["weighted", "least-busy", "lowest-latency", "lowest-cost", "usage-based"] = "weighted"
    retries: int = Field(2, ge=0, le=10, description="Extra tries after the first, across deployments")
    backoff_base_seconds: float = Field(0.1, ge=0)
    backoff_max_seconds: float = Field(10.0, gt=0)
    max_retry_after_seconds: float = Field(
        30.0, ge=0, description="A longer upstream Retry-After is not waited for: fall back instead"
    )
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    context_window_fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    hedge_after_ms: float | None = Field(
        None, gt=0, description="Send a second copy to another deployment when the first is this slow"
    )
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
    latency_ewma_alpha: float = Field(0.3, gt=0, le=1)
    complexity: ComplexityRouting = Field(default_factory=ComplexityRouting)


class ExactCacheSettings(_Strict):
    enabled: bool = False
    ttl: float = Field(3600.0, gt=0, description="Seconds an answer stays cached")
    max_entries: int = Field(10_000, gt=0, description="In-process store bound (LRU beyond it)")


class SemanticCacheSettings(_Strict):
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


class CacheSettings(_Strict):
    exact: ExactCacheSettings = Field(default_factory=ExactCacheSettings)
    semantic: SemanticCacheSettings = Field(default_factory=SemanticCacheSettings)
    redis_url: str | None = Field(None, description="Share the cache between replicas (default: redis_url)")
    namespace: str = Field("llmserve", description="Prefix of every cache key in Redis")


class UsageSettings(_Strict):
    flush_interval_seconds: float = Field(1.0, gt=0, description="Ledger rows are written this often")
    batch_size: int = Field(100, gt=0, description="... or as soon as this many are waiting")
    max_pending: int = Field(100_000, gt=0, description="Beyond it, requests wait for the writer")


class LimitRule(_Strict):
    rpm: int | None = Field(None, gt=0, description="Requests per minute")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute (prompt + completion)")
    max_parallel: int | None = Field(None, gt=0, description="Requests in flight at once")


class LimitSettings(_Strict):
    """Limits hold across replicas when ``redis_url`` is set (atomic in Redis), else per process."""

    per_key: LimitRule = Field(default_factory=LimitRule, description="Default for keys without their own")
    per_model: dict[str, LimitRule] = Field(default_factory=dict, description="Per model group, all keys")
    redis_url: str | None = Field(None, description="Default: the top-level redis_url")


class QueueSettings(_Strict):
    """The admission queue in front of each model group (the seed's RequestQueue)."""

    enabled: bool = True
    max_concurrency: int = Field(64, gt=0, description="Requests a group runs at once")
    per_model_concurrency: dict[str, int] = Field(default_factory=dict)
    max_queued: int = Field(1000, gt=0, description="Waiting requests per group; beyond it 503")
    queue_timeout_seconds: float = Field(30.0, gt=0, description="Longest wait for a slot; then 503")
    default_priority: int = Field(5, ge=0, le=100, description="Lower runs first, as in the seed")


MIN_SECRET_CHARS = 16


def resolve_secret(field: str, value: SecretStr | None) -> SecretStr | None:
    """A secret given literally (at least 16 characters) or as ``env:NAME`` (read at start)."""
    if value is None:
        return None
    raw = value.get_secret_value()
    if raw.startswith("env:"):
        name = raw[len("env:") :]
        if not os.environ.get(name):
            raise ValueError(f"{field} names the environment variable {name}, which is not set")
        return SecretStr(os.environ[name])
    if len(raw) < MIN_SECRET_CHARS:
        raise ValueError(f"{field} must be at least {MIN_SECRET_CHARS} characters")
    return value


class JobSettings(_Strict):
    """Async jobs and batches: where they queue, who runs them, how long results stay."""

    broker: Literal["database", "redis", "rabbitmq"] = Field(
        "database",
        description="database: jobs queue in the database and the server runs them (embedded default); "
        "redis / rabbitmq: `llmserve worker` processes consume them from the broker",
    )
    broker_url: str | None = Field(None, description="redis:// or amqp:// URL; default for redis: redis_url")
    queue_name: str = Field("llmserve-jobs", min_length=1, max_length=128)
    run_in_server: bool | None = Field(
        None, description="Run a worker inside the server; default: only with the database broker"
    )
    worker_concurrency: int = Field(16, gt=0, le=1024, description="Units a worker runs at once")
    lease_seconds: float = Field(
        30.0, gt=0, description="A running unit whose worker stops renewing it this long is run again"
    )
    poll_interval_seconds: float = Field(
        0.5, gt=0, description="Database broker: how often idle workers look"
    )
    max_attempts: int = Field(
        5, gt=0, description="Tries of a unit whose worker died or that got 429/503/5xx"
    )
    batch_priority: int = Field(
        50, ge=0, le=100, description="Batch and async lines run at this priority or lower (higher number)"
    )
    result_ttl_seconds: float = Field(7 * 86400.0, gt=0, description="How long finished async jobs are kept")
    max_file_bytes: int = Field(200 * 1024 * 1024, gt=0, description="Largest upload to /v1/files")
    max_batch_lines: int = Field(50_000, gt=0)
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for callback signatures (or env:NAME); needed for callback_url"
    )
    webhook_max_attempts: int = Field(5, gt=0, le=20)
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_allow_private: bool = Field(
        False, description="Allow callbacks to private, loopback and link-local addresses"
    )
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list, description="Hosts or CIDRs allowed even when private (e.g. 10.0.0.0/8)"
    )

    @field_validator("webhook_secret")
    @classmethod
    def _resolve_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return resolve_secret("webhook_secret", value)


PiiEntity = Literal["email", "phone", "card", "iban", "national_id"]


class GuardrailSettings(_Strict):
    max_messages: int = Field(512, gt=0, description="More messages in one request → 400")
    max_message_chars: int = Field(200_000, gt=0, description="A longer message → 413")
    blocked_patterns: list[str] = Field(default_factory=list, description="Regexes; a match → 400")
    prompt_injection: Literal["off", "flag", "block"] = "off"
    prompt_injection_threshold: float = Field(0.7, gt=0, le=1)
    pii_entities: list[PiiEntity] = Field(default_factory=list, description="What PII detection looks for")
    pii_input: Literal["off", "mask", "block"] = "off"
    pii_output: Literal["off", "mask"] = "off"


class AuthSettings(_Strict):
    allow_remote_without_key: bool = Field(
        False, description="Bind beyond loopback even without a master key (everyone may call)"
    )


class TracingSettings(_Strict):
    enabled: bool | None = Field(
        None, description="None: on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER is set"
    )
    service_name: str = "llmserve"
    exporter: Literal["otlp", "console", "none"] = "otlp"
    endpoint: str | None = Field(None, description="OTLP/HTTP endpoint; default: OTEL_* variables")
    sample_ratio: float = Field(1.0, ge=0, le=1)


class ObservabilitySettings(_Strict):
    metrics: bool = Field(True, description="Serve Prometheus metrics at GET /metrics")
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line")
    log_payloads: bool = Field(False, description="Log prompt and answer text (PII masked)")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Larger request bodies get 413")
    cors_origins: list[str] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # httptools through llmserve's own protocol class (api/http_protocol.py): uvicorn's stock one drops
    # the body of a request that offers an h2c upgrade, as every JDK HttpClient does (Kludex/uvicorn#2722);
    # ours ignores the offer as h11 does. h11 stays selectable: pure Python, about 20% more CPU a request.
    http: Literal["h11", "httptools", "auto"] = Field(
        "httptools",
        description="HTTP/1.1 parser: httptools (fast, h2c offers ignored) or h11; auto: httptools",
    )


class EngineSettings(_Strict):
    preload: bool = Field(False, description="Load local models at start instead of on first use")
    max_queued_requests: int = Field(256, gt=0, description="Waiting generations per local model")
    threads: int | None = Field(None, gt=0, description="torch intra-op threads; default: torch's choice")
    max_batch_size: int = Field(
        16, gt=0, description="Generations a local model decodes together (continuous batching); 1: serial"
    )
    max_wait_ms: float = Field(
        2.0, ge=0, description="An idle model waits this long for more requests to start a batch together"
    )


def _bundled_models() -> list[ModelDeployment]:
    return [ModelDeployment(name=BUNDLED_MODEL_ID, provider="local", model=BUNDLED_MODEL_ID)]


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
    models: list[ModelDeployment] = Field(default_factory=_bundled_models, min_length=1)
    default_model: str | None = Field(None, description="Group answering requests without 'model'")

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _check_default_model(self) -> Settings:
        names = [entry.name for entry in self.models]
        if self.default_model is None:
            self.default_model = names[0]
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
    from pydantic import ValidationError

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


SQLITE_FILENAME = "llmserve.db"


def sqlite_url_for(data_dir: Path) -> str:
    """The embedded default database: a SQLite file in ``data_dir``, as an absolute async URL."""
    return f"sqlite+aiosqlite:///{data_dir.expanduser().resolve() / SQLITE_FILENAME}"


def deployment_id_of(entry: ModelDeployment, index: int) -> str:
    """A deployment's id, everywhere it is named (router, metrics, ledger, validation): ``id``, else
    ``name#position`` in the ``models`` list."""
    return entry.id or f"{entry.name}#{index}"
