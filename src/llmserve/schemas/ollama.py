"""Ollama API wire formats (``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/tags``, ...).

Field names and shapes follow Ollama's docs/api.md and the official ``ollama`` Python client's
``_types.py``. Requests are lenient (Ollama ignores fields it does not know, and clients such as Open
WebUI send many); the response models document what is served for OpenAPI.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

# Go's time.ParseDuration units, which Ollama's keep_alive strings use ("5m", "1h30m", "-1s").
_DURATION = re.compile(r"^-?(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PIECE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")

# Numbers and flags as JSON sends them, never coerced: "64" is not a num_predict, "yes" not a stream
# flag, false not a keep_alive (pydantic's lax mode takes them all). Strict floats take JSON integers.
Int = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]

KeepAlive = Number | Text | None
Format = Literal["", "json"] | dict[str, Any] | None


def keep_alive_seconds(value: KeepAlive) -> float | None:
    """Seconds from Ollama's ``keep_alive`` (a number of seconds or a Go duration); negative is
    "forever". Raises ValueError for anything else, as Ollama answers 400."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return float(text)
    if not _DURATION.match(text):
        raise ValueError(f"invalid duration {value!r} (e.g. '5m', '1h30m', 300, -1)")
    seconds = sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _PIECE.findall(text))
    return -seconds if text.startswith("-") else seconds


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OllamaOptions(_Lenient):
    """The runtime options llmserve acts on; load-time ones (num_ctx, num_gpu, ...) and samplers it
    does not have (mirostat, repeat_penalty, ...) are accepted and ignored, as Ollama ignores
    options a model does not use."""

    num_predict: Int | None = Field(None, ge=-2, description="Max tokens; -1, -2 or 0: the model's default")
    temperature: Number | None = Field(None, ge=0.0)
    top_k: Int | None = Field(None, ge=0)
    top_p: Number | None = Field(None, gt=0.0, le=1.0)
    stop: list[str] | None = None
    seed: Int | None = Field(None, description="A negative seed means random, as in Ollama")
    presence_penalty: Number | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: Number | None = Field(None, ge=-2.0, le=2.0)


class OllamaToolFunction(_Lenient):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class OllamaToolCall(_Lenient):
    function: OllamaToolFunction


class OllamaMessage(_Lenient):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = ""
    images: list[str] | None = None
    tool_calls: list[OllamaToolCall] | None = None
    tool_name: str | None = None
    thinking: str | None = None  # a thinking model's earlier reasoning: not sent back to the model


class _Generation(_Lenient):
    model: str | None = Field(None, max_length=256, description="Omit to use the default model group")
    format: Format = Field(None, description='"json" or a JSON schema: structured output')
    options: OllamaOptions | None = None
    stream: Flag = True
    keep_alive: KeepAlive = Field(None, description="Accepted; idle unloading follows the server's config")
    think: Flag | str | None = None

    @field_validator("keep_alive")
    @classmethod
    def _duration(cls, value: KeepAlive) -> KeepAlive:
        keep_alive_seconds(value)
        return value


class OllamaChatRequest(_Generation):
    messages: list[OllamaMessage] = Field(
        default_factory=list, description="Empty: load the model and answer done_reason 'load'"
    )
    tools: list[dict[str, Any]] | None = None


class OllamaGenerateRequest(_Generation):
    prompt: str | None = Field(None, description="Empty: load the model and answer done_reason 'load'")
    system: str | None = None
    raw: Flag = Field(False, description="No chat template: the prompt goes to the model as it is")
    suffix: str | None = None
    template: str | None = None
    context: list[Int] | None = None
    images: list[str] | None = None


class OllamaEmbedRequest(_Lenient):
    model: str | None = Field(None, max_length=256)
    input: str | list[str]
    truncate: Flag = True
    dimensions: Int | None = Field(None, ge=1)
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class OllamaEmbeddingsRequest(_Lenient):
    """The legacy ``/api/embeddings``: one prompt, one vector."""

    model: str | None = Field(None, max_length=256)
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class OllamaShowRequest(_Lenient):
    model: str | None = Field(None, max_length=256)
    name: str | None = Field(None, max_length=256, description="Older clients' name for 'model'")
    verbose: Flag = False


# -- responses (documentation; the serving module builds plain dicts) -------------------------------


class OllamaError(BaseModel):
    error: str


class OllamaStats(BaseModel):
    model: str
    created_at: str
    done: bool
    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class OllamaMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    tool_calls: list[OllamaToolCall] | None = None


class OllamaChatResponse(OllamaStats):
    message: OllamaMessageOut


class OllamaGenerateResponse(OllamaStats):
    response: str


class OllamaEmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class OllamaEmbeddingsResponse(BaseModel):
    embedding: list[float]


class OllamaDetails(BaseModel):
    parent_model: str = ""
    format: str
    family: str
    families: list[str] | None
    parameter_size: str
    quantization_level: str


class OllamaModelEntry(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: OllamaDetails


class OllamaTagsResponse(BaseModel):
    models: list[OllamaModelEntry]


class OllamaRunningModel(BaseModel):
    name: str
    model: str
    size: int
    digest: str
    details: OllamaDetails
    expires_at: str
    size_vram: int
    context_length: int | None = None


class OllamaPsResponse(BaseModel):
    models: list[OllamaRunningModel]


class OllamaShowResponse(BaseModel):
    modelfile: str
    parameters: str
    template: str
    details: OllamaDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class OllamaVersionResponse(BaseModel):
    version: str
