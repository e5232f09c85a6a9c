"""OpenAI protocol wire formats (chat completions, completions, models), plus our extensions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmserve.schemas.common import ConversationId, Flag, Int, Number, SeedTurn

Temperature = Annotated[Number, Field(ge=0.0, le=2.0)]
TopP = Annotated[Number, Field(gt=0.0, le=1.0)]
Penalty = Annotated[Number, Field(ge=-2.0, le=2.0)]
MaxTokens = Annotated[Int, Field(ge=1, le=1_000_000)]


class _Lenient(BaseModel):
    # SDKs add fields over time (store, parallel_tool_calls, ...); unknown ones must not break clients.
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type in ("text", "input_text"))

    def has_non_text_parts(self) -> bool:
        return isinstance(self.content, list) and any(
            p.type not in ("text", "input_text") for p in self.content
        )


class StreamOptions(_Lenient):
    include_usage: Flag = False


class CacheControl(BaseModel):
    """The ``cache`` extension; accepted now, acted on by the caching issue."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    no_cache: Flag = Field(False, alias="no-cache")
    no_store: Flag = Field(False, alias="no-store")
    ttl: Int | None = Field(None, ge=0)
    namespace: str | None = Field(None, max_length=128)


class SamplingFields(_Lenient):
    model: str | None = Field(None, max_length=256, description="Omit to use the default model group")
    max_tokens: MaxTokens | None = None
    temperature: Temperature = 1.0
    top_p: TopP = 1.0
    top_k: Int = Field(0, ge=0, description="Extension: 0 disables top-k")
    n: Int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: Int | None = Field(None, ge=-(2**63), lt=2**63)
    presence_penalty: Penalty = 0.0
    frequency_penalty: Penalty = 0.0
    stream: Flag = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    ignore_eos: Flag = Field(False, description="Extension: generate max_tokens even past end-of-sequence")

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return value

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


def one_of_messages_or_prompt() -> dict[str, Any]:
    """The document's form of ``_messages_or_prompt``: exactly one of them, not null (generated
    clients and the fuzz tier then build bodies the server takes)."""
    return {
        "oneOf": [
            {"required": ["messages"], "properties": {"messages": {"type": "array"}}},
            {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
        ]
    }


class ChatCompletionRequest(SamplingFields):
    model_config = ConfigDict(json_schema_extra=one_of_messages_or_prompt())

    messages: list[ChatMessageIn] | None = Field(None, min_length=1)
    # The seed's body shape: {prompt, history, max_tokens, temperature, top_p}.
    prompt: str | None = None
    history: list[SeedTurn] | None = None
    max_completion_tokens: MaxTokens | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    logprobs: Flag | None = None
    # Extensions.
    conversation_id: ConversationId | None = None
    priority: Int | None = Field(None, ge=0, le=100)
    cache: CacheControl | None = None
    requirements: Literal["low_latency", "high_quality"] | None = Field(
        None, description="Extension: a hint for model 'auto' (complexity routing)"
    )

    @model_validator(mode="after")
    def _messages_or_prompt(self) -> ChatCompletionRequest:
        if self.messages is None and self.prompt is None:
            raise ValueError("either 'messages' or the seed field 'prompt' is required")
        if self.messages is not None and self.prompt is not None:
            raise ValueError("send either 'messages' or 'prompt', not both")
        return self


class CompletionRequest(SamplingFields):
    prompt: str | list[str] = Field(description="A prompt, or a list of prompts (one result each)")
    max_tokens: MaxTokens | None = 16
    echo: Flag = False
    cache: CacheControl | None = None
    suffix: str | None = None
    logprobs: Int | None = None
    best_of: Int | None = None

    @field_validator("prompt")
    @classmethod
    def _non_empty_list(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt list must not be empty")
        return value


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoiceOut(BaseModel):
    index: int
    message: AssistantMessageOut
    finish_reason: str
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoiceOut]
    usage: UsageOut
    system_fingerprint: str | None = None
    conversation_id: str | None = Field(None, description="Extension: set when history is stored")


class CompletionChoiceOut(BaseModel):
    index: int
    text: str
    finish_reason: str
    logprobs: None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoiceOut]
    usage: UsageOut


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class EmbeddingRequest(_Lenient):
    model: str | None = Field(None, max_length=256, description="Omit to use the default model group")
    input: str | list[str] = Field(description="A text or a list of texts (token-id input is not supported)")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Int | None = Field(None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("input must not be empty")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingOut(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian float32s")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingOut]
    model: str
    usage: EmbeddingUsage


# Stream events (``stream: true``): each is ``data: <one of these as JSON>``; the stream ends with
# ``data: [DONE]``. Documented so that generated clients know what a chunk holds.
class ChatDeltaOut(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChunkChoiceOut(BaseModel):
    index: int
    delta: ChatDeltaOut
    logprobs: None = None
    finish_reason: str | None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChunkChoiceOut]
    usage: UsageOut | None = Field(
        None, description="With stream_options.include_usage: null, then set on a last chunk with no choices"
    )


class CompletionChunkChoiceOut(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: str | None


class CompletionChunk(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChunkChoiceOut]
    usage: UsageOut | None = Field(
        None, description="With stream_options.include_usage: null, then set on a last chunk with no choices"
    )
