"""Wire formats of ``/v1/tokenize`` and ``/v1/estimate`` (extensions, not part of OpenAI's API)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmserve.schemas.openai import ChatMessageIn, MaxTokens, _Lenient, one_of_messages_or_prompt


class TokenizeRequest(_Lenient):
    model_config = ConfigDict(json_schema_extra=one_of_messages_or_prompt())

    model: str | None = Field(None, max_length=256, description="Omit to use the default model group")
    messages: list[ChatMessageIn] | None = Field(
        None, min_length=1, description="A chat, rendered with the model's chat template"
    )
    prompt: str | None = Field(None, description="A raw prompt, as /v1/completions sends it")

    @model_validator(mode="after")
    def _messages_or_prompt(self) -> TokenizeRequest:
        if self.messages is None and self.prompt is None:
            raise ValueError("either 'messages' or 'prompt' is required")
        if self.messages is not None and self.prompt is not None:
            raise ValueError("send either 'messages' or 'prompt', not both")
        return self


class EstimateRequest(TokenizeRequest):
    max_tokens: MaxTokens | None = Field(None, description="Default: what the model would allow")
    max_completion_tokens: MaxTokens | None = None

    @model_validator(mode="after")
    def _one_max_tokens(self) -> EstimateRequest:
        both = self.max_tokens is not None and self.max_completion_tokens is not None
        if both and self.max_tokens != self.max_completion_tokens:
            raise ValueError("send max_tokens or max_completion_tokens, not both")
        return self

    def reply_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class TokenizeResponse(BaseModel):
    model: str
    tokens: list[int] | None = Field(description="Token ids; null where the count is an estimate")
    count: int
    estimated: bool = Field(description="True for remote models: no tokenizer, about 4 chars a token")


class EstimateResponse(BaseModel):
    model: str
    prompt_tokens: int
    max_completion_tokens: int
    estimated: bool
    context_window: int | None = Field(description="null where the deployment does not say")
    input_cost_usd: float
    max_output_cost_usd: float
    max_total_cost_usd: float
    # Floats for arithmetic in any client; exact decimal strings for money that must add up.
    input_cost_usd_exact: str
    max_output_cost_usd_exact: str
    max_total_cost_usd_exact: str
