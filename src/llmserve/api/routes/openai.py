"""OpenAI-compatible surface: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

import base64
import struct
import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmserve.api import convert
from llmserve.api.deps import ChatServiceDep, RegistryDep
from llmserve.api.sse import sse_response
from llmserve.api.streams import openai_chat_sse, openai_completion_sse, route_headers, stream_headers
from llmserve.schemas.openai import (
    AssistantMessageOut,
    ChatChoiceOut,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionChoiceOut,
    CompletionRequest,
    CompletionResponse,
    EmbeddingOut,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ModelList,
    ModelOut,
    UsageOut,
)
from llmserve.services.chat import ChatResult
from llmserve.services.models import ModelGroup

router = APIRouter(prefix="/v1", tags=["openai"])


def _usage(result: ChatResult) -> UsageOut:
    usage = result.completion.usage
    return UsageOut(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


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
    response.headers.update(route_headers(result))
    if result.conversation_id:
        response.headers["x-llmserve-conversation-id"] = result.conversation_id
    choices = [
        ChatChoiceOut(
            index=c.index,
            message=AssistantMessageOut(
                content=c.text if c.text or not c.tool_calls else None,
                tool_calls=list(c.tool_calls) or None,
            ),
            finish_reason=c.finish_reason,
        )
        for c in result.completion.choices
    ]
    return ChatCompletionResponse(
        id=f"chatcmpl-{result.message_id}",
        created=int(time.time()),
        model=result.model,
        choices=choices,
        usage=_usage(result),
        conversation_id=result.conversation_id,
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
    response.headers.update(route_headers(result))
    choices = [
        CompletionChoiceOut(
            index=c.index, text=(prompt + c.text) if body.echo else c.text, finish_reason=c.finish_reason
        )
        for c in result.completion.choices
    ]
    return CompletionResponse(
        id=f"cmpl-{result.message_id}",
        created=int(time.time()),
        model=result.model,
        choices=choices,
        usage=_usage(result),
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
