"""What is served: the ``models:`` entries (deployments of model groups) and the local engine."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from llmserve.config.base import StrictModel
from llmserve.config.secrets import resolve_secret

BUNDLED_MODEL_ID = "tiny-chat"

ProviderKind = Literal["local", "openai", "anthropic"]


class Pricing(StrictModel):
    input_per_1k: float = Field(0.0, ge=0)
    output_per_1k: float = Field(0.0, ge=0)


class ModelDeployment(StrictModel):
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
    responses_api: Literal["translate", "native"] = Field(
        "translate",
        description="openai only: 'native' sends /v1/responses requests to the upstream's own "
        "/responses as the client sent them; 'translate' makes them a chat call",
    )
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
        if self.responses_api == "native" and self.provider != "openai":
            # Only an OpenAI upstream speaks the Responses API; elsewhere the flag would be a silent no-op.
            raise ValueError("responses_api: native needs provider 'openai'")
        return self

    @field_validator("api_key")
    @classmethod
    def _resolve_env_key(cls, value: SecretStr | None) -> SecretStr | None:
        return resolve_secret("api_key", value, min_chars=0)


def deployment_id_of(entry: ModelDeployment, index: int) -> str:
    """A deployment's id, everywhere it is named (router, metrics, ledger, validation): ``id``, else
    ``name#position`` in the ``models`` list."""
    return entry.id or f"{entry.name}#{index}"


def bundled_models() -> list[ModelDeployment]:
    return [ModelDeployment(name=BUNDLED_MODEL_ID, provider="local", model=BUNDLED_MODEL_ID)]


class EngineSettings(StrictModel):
    preload: bool = Field(False, description="Load local models at start instead of on first use")
    max_queued_requests: int = Field(
        32, gt=0, description="Generations per local model in its engine (running and waiting); beyond: 503"
    )
    threads: int | None = Field(
        None, gt=0, description="torch intra-op threads; default: all cores but one (the event loop's)"
    )
    max_batch_size: int = Field(
        16, gt=0, description="Generations a local model decodes together (continuous batching); 1: serial"
    )
    max_wait_ms: float = Field(
        2.0, ge=0, description="An idle model waits this long for more requests to start a batch together"
    )
    request_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="A local generation still running this long after it was submitted stops: "
        "it ends with what it has (finish_reason 'length'), or 504 if it has nothing yet",
    )
    max_total_tokens_per_request: int = Field(
        8192, gt=0, description="n x max_tokens a request to a local model may ask for; beyond it 400"
    )
