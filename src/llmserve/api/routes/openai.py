"""OpenAI-compatible surface: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models.

The two hot POSTs are ``HotRoute``s (``api/hot_route.py``): they read their own bodies and check the
key themselves (``api/body.py``); the rest are ordinary FastAPI routes.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmserve.api.body import authenticated_body
from llmserve.api.deps import ChatServiceDep, RegistryDep, services_of
from llmserve.api.hot_route import HotRoute
from llmserve.api.serving import convert, openai_chat, openai_completions, openai_models
from llmserve.schemas.openai import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelList,
    ModelOut,
)

router = APIRouter(prefix="/v1", tags=["openai"])


async def create_chat_completion(request: Request) -> Response:
    """Chat completions, the OpenAI way (also takes the seed's ``{prompt, history}`` shape)."""
    body = await authenticated_body(request, ChatCompletionRequest)
    chat = services_of(request).chat
    ctx = convert.request_context(request, body.cache, body.priority)
    if body.stream:
        return (await openai_chat.stream(chat, body, ctx)).response()
    return (await openai_chat.answer(chat, body, ctx)).response()


async def create_completion(request: Request) -> Response:
    """Text completions of a raw prompt (no chat template)."""
    body = await authenticated_body(request, CompletionRequest)
    chat = services_of(request).chat
    ctx = convert.request_context(request, body.cache)
    if body.stream:
        return (await openai_completions.stream(chat, body, ctx)).response()
    return (await openai_completions.answer(chat, body, ctx)).response()


hot_routes = [
    HotRoute(
        "/v1/chat/completions",
        create_chat_completion,
        body=ChatCompletionRequest,
        response=ChatCompletionResponse,
        tags=["openai"],
        example={"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64},
    ),
    HotRoute(
        "/v1/completions",
        create_completion,
        body=CompletionRequest,
        response=CompletionResponse,
        tags=["openai"],
        example={"prompt": "Once upon a time", "max_tokens": 32},
    ),
]


@router.post("/embeddings", response_model=EmbeddingResponse)
async def create_embeddings(
    body: EmbeddingRequest, chat: ChatServiceDep, request: Request
) -> EmbeddingResponse:
    return await openai_models.embeddings(chat, body, convert.request_context(request).principal)


@router.get("/models", response_model=ModelList)
async def list_models(registry: RegistryDep) -> ModelList:
    return openai_models.model_list(registry)


@router.get("/models/{model_id:path}", response_model=ModelOut)
async def retrieve_model(model_id: str, registry: RegistryDep) -> ModelOut:
    return openai_models.model_entry(registry, model_id)
