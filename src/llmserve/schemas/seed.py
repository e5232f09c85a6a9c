"""The seed-native chat API: the shapes the product was first described with. Keep them exact."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from llmserve.schemas.common import ConversationId, Flag, Int, Number, SeedTurn


class SeedChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1)  # its length: the guardrails' max_message_chars (413)
    history: list[SeedTurn] = Field(default_factory=list)
    # An upper bound, as in the seed (chatglm's max_length): clamped to what the context leaves.
    max_tokens: Int | None = Field(None, ge=1, le=1_000_000)
    temperature: Number = Field(1.0, ge=0.0, le=2.0)
    top_p: Number = Field(1.0, gt=0.0, le=1.0)
    conversation_id: ConversationId | None = None
    model: str | None = Field(None, max_length=256, description="Extension: the model group to use")


class SeedChatResponse(BaseModel):
    response: str
    history: list[SeedTurn]
    status: int = 200
    time: str = Field(description="Server local time, 'YYYY-mm-dd HH:MM:SS'")
    message_id: str
    conversation_id: str


class SeedStreamRequest(SeedChatRequest):
    stream: Flag = True


class SeedStreamEvent(BaseModel):
    """One event of a seed stream: ``data: {"text", "message_id", "conversation_id"?}``."""

    text: str = Field(description="The next piece (stream=true) or the whole text (stream=false)")
    message_id: str
    conversation_id: str | None = Field(None, description="Set when the exchange is stored")


class SeedStreamQuery(BaseModel):
    """``GET /chat/stream`` query parameters (EventSource can only GET; no history in a URL)."""

    # Its length: the guardrails' max_message_chars (413) as on the POST routes; a URL is bounded
    # before that by the server's head limit (server.max_header_bytes, 431).
    prompt: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    conversation_id: ConversationId | None = None
    model: str | None = Field(None, max_length=256)
    stream: bool = True


class StoredMessageOut(BaseModel):
    id: str
    conversation_id: str
    role: str
    content: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: datetime


class StoredMessages(BaseModel):
    conversation_id: str
    messages: list[StoredMessageOut]


class SimpleChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = Field(min_length=1)  # its length: the guardrails' max_message_chars (413)
    model: str | None = Field(None, max_length=256)
    stream: Flag = False
    priority: Int = Field(5, ge=0, le=100)


class SimpleChatResponse(BaseModel):
    response: str
    model_used: str
    latency_ms: float
    cached: bool


def seed_time(moment: datetime | None = None) -> str:
    return (moment or datetime.now()).strftime("%Y-%m-%d %H:%M:%S")
