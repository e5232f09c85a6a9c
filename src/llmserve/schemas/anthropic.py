"""Anthropic Messages API wire formats (``POST /v1/messages``, ``/v1/messages/count_tokens``).

Checked against the official ``anthropic`` SDK's types. Requests keep the fields the pipeline does not
own (``thinking``, ``cache_control`` on blocks, ``service_tier``, ...): they travel unchanged to an
Anthropic upstream and are left out when the request is translated for another backend.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmserve.schemas.openai import CacheControl

Temperature = Annotated[float, Field(ge=0.0, le=1.0)]
TopP = Annotated[float, Field(gt=0.0, le=1.0)]


class _Open(BaseModel):
    # Anthropic adds fields and block types over time: a client's newer field must not be a 400 here.
    # Strict: a value is what the schema says ("true" is not a boolean), as Anthropic validates.
    model_config = ConfigDict(extra="allow", strict=True)


class AnthropicTextBlock(_Open):
    type: Literal["text"]
    text: str


class AnthropicImageBlock(_Open):
    type: Literal["image"]
    source: dict[str, Any]


class AnthropicToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class AnthropicToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[AnthropicTextBlock | AnthropicImageBlock] | None = None
    is_error: bool | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "\n".join(block.text for block in self.content if isinstance(block, AnthropicTextBlock))

    def has_images(self) -> bool:
        return isinstance(self.content, list) and any(
            isinstance(b, AnthropicImageBlock) for b in self.content
        )


class AnthropicOtherBlock(_Open):
    """A block type this server does not translate (thinking, document, server tools...): kept for an
    Anthropic upstream, refused for any other."""

    type: str


AnthropicContentBlock = Annotated[
    AnthropicTextBlock
    | AnthropicImageBlock
    | AnthropicToolUseBlock
    | AnthropicToolResultBlock
    | AnthropicOtherBlock,
    Field(union_mode="left_to_right"),
]


class AnthropicMessageParam(_Open):
    role: Literal["user", "assistant"]
    content: str | list[AnthropicContentBlock]


class AnthropicToolParam(_Open):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    type: str | None = None  # "custom", or a server tool's versioned type


class AnthropicToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class AnthropicMetadata(_Open):
    user_id: str | None = Field(None, max_length=256)


class AnthropicConversation(_Open):
    model: str = Field(max_length=256)
    messages: list[AnthropicMessageParam] = Field(min_length=1)
    system: str | list[AnthropicTextBlock] | None = None
    tools: list[AnthropicToolParam] | None = None
    tool_choice: AnthropicToolChoice | None = None

    def system_text(self) -> str:
        if self.system is None or isinstance(self.system, str):
            return self.system or ""
        return "\n\n".join(block.text for block in self.system)


class AnthropicCountTokensRequest(AnthropicConversation):
    pass


EXTENSIONS = ("conversation_id", "priority", "cache")


class AnthropicMessagesRequest(AnthropicConversation):
    max_tokens: int = Field(ge=1, le=1_000_000)
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: int | None = Field(None, ge=0)
    stop_sequences: list[str] | None = None
    metadata: AnthropicMetadata | None = None
    stream: bool = False
    # llmserve's extensions, as on /v1/chat/completions (never sent to an upstream).
    conversation_id: str | None = Field(None, max_length=64, description="Extension: server-side history")
    priority: int | None = Field(None, ge=0, le=100, description="Extension: lower is served first")
    cache: CacheControl | None = Field(None, description="Extension: no-cache, no-store, ttl, namespace")

    @field_validator("stop_sequences")
    @classmethod
    def _real_stops(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not stop for stop in value):
            raise ValueError("stop sequences must not be empty")
        return value


class AnthropicUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class AnthropicMessageResponse(BaseModel):
    """The ``message`` object; with ``"stream": true`` the same message arrives as Anthropic's events
    (``message_start`` … ``message_stop``) over ``text/event-stream``."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: AnthropicUsage


class AnthropicCountTokensResponse(BaseModel):
    input_tokens: int


class AnthropicErrorObject(BaseModel):
    type: str
    message: str


class AnthropicErrorResponse(BaseModel):
    """Anthropic's error body, which every failure on the Messages routes answers with."""

    type: Literal["error"] = "error"
    error: AnthropicErrorObject
    request_id: str | None = None
