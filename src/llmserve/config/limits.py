"""What a caller may use: rate limits, the admission queue, and the usage ledger budgets count from."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from llmserve.config.base import StrictModel


class UsageSettings(StrictModel):
    flush_interval_seconds: float = Field(1.0, gt=0, description="Ledger rows are written this often")
    batch_size: int = Field(100, gt=0, description="... or as soon as this many are waiting")
    max_pending: int = Field(100_000, gt=0, description="Beyond it, requests wait for the writer")
    # The outbox (services/usage_journal.py): each row is appended to a per-process file before the
    # answer leaves, so a crash between two writes loses no row; the next start inserts what is left.
    journal: bool = Field(True, description="Journal each row to a file before the answer is sent")
    journal_dir: Path | None = Field(None, description="Default: usage-journal/ in data_dir (local disk)")


class LimitRule(StrictModel):
    rpm: int | None = Field(None, gt=0, description="Requests per minute")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute (prompt + completion)")
    max_parallel: int | None = Field(None, gt=0, description="Requests in flight at once")


class LimitSettings(StrictModel):
    """Limits hold across replicas when ``redis_url`` is set (atomic in Redis), else per process."""

    per_key: LimitRule = Field(default_factory=LimitRule, description="Default for keys without their own")
    per_model: dict[str, LimitRule] = Field(default_factory=dict, description="Per model group, all keys")
    redis_url: str | None = Field(None, description="Default: the top-level redis_url")


class QueueSettings(StrictModel):
    """The admission queue in front of each model group (the seed's RequestQueue)."""

    # Shed early (issue 14): a group of local models runs what its engines decode at once (engine.
    # max_batch_size per deployment) unless per_model_concurrency says otherwise; a few more wait, about
    # a second at most, and the rest get 503 with Retry-After at once instead of after a long wait.
    enabled: bool = True
    max_concurrency: int = Field(
        64,
        gt=0,
        description="Requests a remote group runs at once (local groups: engine.max_batch_size each)",
    )
    per_model_concurrency: dict[str, int] = Field(default_factory=dict)
    max_queued: int = Field(16, gt=0, description="Waiting requests per group; beyond it 503")
    queue_timeout_seconds: float = Field(1.0, gt=0, description="Longest wait for a slot; then 503")
    default_priority: int = Field(5, ge=0, le=100, description="Lower runs first, as in the seed")
