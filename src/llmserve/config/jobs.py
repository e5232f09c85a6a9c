"""The jobs section: async jobs, batches, their workers and broker, and signed completion callbacks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from llmserve.config.base import StrictModel
from llmserve.config.secrets import resolve_secret


class JobSettings(StrictModel):
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
    max_stored_bytes_per_owner: int = Field(
        1024**3,
        gt=0,
        description="Storage quota per tenant: uploads and batch outputs together; an upload that would "
        "exceed it is refused with 413 storage_quota_exceeded before anything is stored",
    )
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
