"""OpenAI-compatible surface: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmserve.api import convert
from llmserve.api.deps import ChatServiceDep, RegistryDep
from llmserve.api.sse import sse_response
from llmserve.api.streams import (
    openai_chat_sse,
    openai_completion_sse,
    route_headers,
    stream_headers,
    usage_dict,
)
from llmserve.schemas.openai import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingOut,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ModelList,
    ModelOut,
)
from llmserve.services.models import ModelGroup

router = APIRouter(prefix="/v1", tags=["openai"])


def json_response(payload: dict[str, Any], headers: dict[str, str]) -> Response:
    """The answer encoded once with orjson. ``response_model`` still documents it (OpenAPI), but a
    returned Response skips FastAPI's validate-then-serialize pass over what llmserve just built."""
    return Response(orjson.dumps(payload), media_type="application/json", headers=headers)


@router.post("/chat/completions", response_model=ChatCompletionResponse, response_model_exclude_none=False)
async def create_chat_completion(
    body: ChatCompletionRequest, chat: ChatServiceDep, request: Request, response: Response
) -> ChatCompletionResponse | Response:
    history, messages = convert.chat_messages(body)
    options = convert.chat_options(body)
    kwargs = {
        "model": body.model,
        "conversation_id": body.conversation_id,
        "inline_history": history,
        "requirements": body.requirements,
        "ctx": convert.request_context(request, body.cache, body.priority),
    }
    if body.stream:
        stream = await chat.stream_chat(messages, options, **kwargs)  # type: ignore[arg-type]
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse_response(
            openai_chat_sse(stream, n=options.n, include_usage=include_usage), stream_headers(stream)
        )
    result = await chat.chat(messages, options, **kwargs)  # type: ignore[arg-type]
    headers = route_headers(result)
    if result.conversation_id:
        headers["x-llmserve-conversation-id"] = result.conversation_id
    choices = [
        {
            "index": c.index,
            "message": {
                "role": "assistant",
                "content": c.text if c.text or not c.tool_calls else None,
                "tool_calls": list(c.tool_calls) or None,
            },
            "finish_reason": c.finish_reason,
            "logprobs": None,
        }
        for c in result.completion.choices
    ]
    return json_response(
        {
            "id": f"chatcmpl-{result.message_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": result.model,
            "choices": choices,
            "usage": usage_dict(result.completion.usage),
            "system_fingerprint": None,
            "conversation_id": result.conversation_id,
        },
        headers,
    )


@router.post("/completions", response_model=CompletionResponse)
async def create_completion(
    body: CompletionRequest, chat: ChatServiceDep, request: Request, response: Response
) -> CompletionResponse | Response:
    options = convert.completion_options(body)
    prompt = convert.single_prompt(body)
    ctx = convert.request_context(request, body.cache)
    if body.stream:
        stream = await chat.stream_text(prompt, options, body.model, ctx)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse_response(
            openai_completion_sse(stream, include_usage=include_usage), stream_headers(stream)
        )
    result = await chat.complete_text(prompt, options, body.model, ctx)
    choices = [
        {
            "index": c.index,
            "text": (prompt + c.text) if body.echo else c.text,
            "finish_reason": c.finish_reason,
            "logprobs": None,
        }
        for c in result.completion.choices
    ]
    return json_response(
        {
            "id": f"cmpl-{result.message_id}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": result.model,
            "choices": choices,
            "usage": usage_dict(result.completion.usage),
        },
        route_headers(result),
    )


@router.post("/embeddings", response_model=EmbeddingResponse)
async def create_embeddings(body: EmbeddingRequest, chat: ChatServiceDep) -> EmbeddingResponse:
    texts = body.texts()
    model, vectors = await chat.embed(texts, body.model)
    if body.dimensions is not None:
        vectors = [vector[: body.dimensions] for vector in vectors]
    # Remote upstreams report usage per request; this estimate (chars/4) keeps the field honest-ish
    # without a tokenizer for every remote model.
    tokens = sum(max(1, len(text) // 4) for text in texts)
    encode = _base64_floats if body.encoding_format == "base64" else list
    return EmbeddingResponse(
        data=[EmbeddingOut(index=i, embedding=encode(v)) for i, v in enumerate(vectors)],
        model=model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _base64_floats(vector: list[float]) -> str:
    # What the openai SDKs ask for by default: little-endian float32s, base64-encoded.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _model_out(group: ModelGroup) -> ModelOut:
    return ModelOut(id=group.name, created=group.created, owned_by=group.owned_by)


@router.get("/models", response_model=ModelList)
async def list_models(registry: RegistryDep) -> ModelList:
    return ModelList(data=[_model_out(group) for group in registry.groups()])


@router.get("/models/{model_id:path}", response_model=ModelOut)
async def retrieve_model(model_id: str, registry: RegistryDep) -> ModelOut:
    return _model_out(registry.group(model_id))
