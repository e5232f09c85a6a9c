"""The OpenAI Responses API wire format (``POST /v1/responses``), as the official SDK sends it.

Input items and tools stay plain objects here: their many shapes are checked where they are
translated (``api/serving/responses_convert.py``), which names the offending item in a 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

# Strict: "64" or true for a number is a 400, as OpenAI answers it.
Number = StrictFloat | StrictInt
MetadataValue = Annotated[str, Field(max_length=512)]


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(None, max_length=64)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: StrictBool | None = None
    description: str | None = None


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(BaseModel):
    # SDKs add fields over time (include, prompt_cache_key, service_tier, ...): unknown ones are kept,
    # unread by the pipeline, for an upstream that speaks the Responses API (responses_api: native).
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, max_length=256)
    input: str | list[dict[str, Any]] = Field(
        description="A string (one user message) or a list of input items: messages, function_call, "
        "function_call_output"
    )
    instructions: str | None = None
    max_output_tokens: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[Number, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[Number, Field(gt=0.0, le=1.0)] | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    text: TextOptions | None = None
    metadata: dict[Annotated[str, Field(max_length=64)], MetadataValue] | None = Field(None, max_length=16)
    user: str | None = Field(None, max_length=256)
    truncation: Literal["auto", "disabled"] | None = None
    store: StrictBool = True
    previous_response_id: str | None = Field(None, max_length=64)
    stream: StrictBool = False
    background: StrictBool = False
    reasoning: dict[str, Any] | None = None
    conversation: str | dict[str, Any] | None = None
    # Extensions, as on /v1/chat/completions.
    priority: Annotated[StrictInt, Field(ge=0, le=100)] | None = None


class ResponseObject(BaseModel):
    """What ``POST /v1/responses`` and ``GET /v1/responses/{id}`` answer (the SDK's ``Response``)."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["response"] = "response"
    created_at: float
    status: Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]
    model: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    previous_response_id: str | None = None


class InputItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True
