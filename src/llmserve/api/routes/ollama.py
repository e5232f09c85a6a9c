"""The Ollama API: /api/chat, /api/generate, /api/embed, /api/embeddings, /api/tags, /api/show,
/api/ps, /api/version — for clients that speak only Ollama (Open WebUI, editors, the ``ollama``
client). Errors are ``{"error": "..."}`` (``api/ollama_routing.py``).

Chat and generate are hot routes (they read their own bodies and check the key themselves, like
/v1/chat/completions); the rest are FastAPI routes that answer Ollama's errors too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import Response

from llmserve.api.body import authenticated_body
from llmserve.api.deps import ChatServiceDep, RegistryDep, services_of
from llmserve.api.ollama_routing import NotOffered, OllamaAPIRoute, OllamaHotRoute, document_errors
from llmserve.api.serving import convert, ollama, ollama_models
from llmserve.schemas.ollama import (
    OllamaChatRequest,
    OllamaChatResponse,
    OllamaEmbeddingsRequest,
    OllamaEmbeddingsResponse,
    OllamaEmbedRequest,
    OllamaEmbedResponse,
    OllamaGenerateRequest,
    OllamaGenerateResponse,
    OllamaPsResponse,
    OllamaShowRequest,
    OllamaShowResponse,
    OllamaTagsResponse,
    OllamaVersionResponse,
)

router = APIRouter(prefix="/api", tags=["ollama"], route_class=OllamaAPIRoute)

# A generation may meet every limit and upstream failure; show names a model; the lists only a key.
_GENERATES = ("400", "401", "403", "404", "413", "429", "502", "503", "504")
_ERRORS = {
    ("post", "/api/chat"): _GENERATES,
    ("post", "/api/generate"): _GENERATES,
    ("post", "/api/embed"): _GENERATES,
    ("post", "/api/embeddings"): _GENERATES,
    ("post", "/api/show"): ("400", "401", "404", "413"),
    ("get", "/api/tags"): ("400", "401"),
    ("get", "/api/ps"): ("400", "401"),
    ("get", "/api/version"): ("400", "401"),
}


async def ollama_chat(request: Request) -> Response:
    """Ollama's chat: NDJSON lines unless ``stream: false``; no messages loads the model."""
    body = await authenticated_body(request, OllamaChatRequest)
    ctx = convert.request_context(request)
    return (await ollama.chat(services_of(request).chat, body, ctx)).response()


async def ollama_generate(request: Request) -> Response:
    """Ollama's generate (the chat template applies unless ``raw``); no prompt loads the model."""
    body = await authenticated_body(request, OllamaGenerateRequest)
    ctx = convert.request_context(request)
    return (await ollama.generate(services_of(request).chat, body, ctx)).response()


hot_routes = [
    OllamaHotRoute(
        "/api/chat",
        ollama_chat,
        body=OllamaChatRequest,
        response=OllamaChatResponse,
        tags=["ollama"],
        example={"model": "tiny-chat:latest", "messages": [{"role": "user", "content": "Hello!"}]},
    ),
    OllamaHotRoute(
        "/api/generate",
        ollama_generate,
        body=OllamaGenerateRequest,
        response=OllamaGenerateResponse,
        tags=["ollama"],
        example={"model": "tiny-chat:latest", "prompt": "Hello!", "stream": False},
    ),
]


@router.post("/embed", response_model=OllamaEmbedResponse)
async def ollama_embed(body: OllamaEmbedRequest, chat: ChatServiceDep, request: Request) -> dict[str, Any]:
    return await ollama_models.embed(chat, body, convert.request_context(request).principal)


@router.post("/embeddings", response_model=OllamaEmbeddingsResponse)
async def ollama_embeddings(
    body: OllamaEmbeddingsRequest, chat: ChatServiceDep, request: Request
) -> dict[str, Any]:
    return await ollama_models.embeddings(chat, body, convert.request_context(request).principal)


@router.get("/tags", response_model=OllamaTagsResponse)
async def ollama_tags(registry: RegistryDep) -> dict[str, Any]:
    return await ollama_models.tags(registry)


@router.post("/show", response_model=OllamaShowResponse)
async def ollama_show(body: OllamaShowRequest, registry: RegistryDep) -> dict[str, Any]:
    return await ollama_models.show(registry, body.model or body.name)


@router.get("/ps", response_model=OllamaPsResponse)
async def ollama_ps(registry: RegistryDep) -> dict[str, Any]:
    return await ollama_models.ps(registry)


async def model_management(request: Request) -> None:
    """Ollama's pull/push/create/copy/delete: the models here are the server's configuration."""
    raise NotOffered(
        f"{request.url.path} is not offered: llmserve serves the models its configuration names "
        "(add a models: entry and restart; GET /api/tags lists them)"
    )


for _operation, _method in (
    ("pull", "POST"),
    ("push", "POST"),
    ("create", "POST"),
    ("copy", "POST"),
    ("delete", "DELETE"),
):
    router.add_api_route(f"/{_operation}", model_management, methods=[_method], include_in_schema=False)


@router.get("/version", response_model=OllamaVersionResponse)
async def ollama_version() -> dict[str, str]:
    return ollama_models.version()


def document(app: FastAPI) -> None:
    """Ollama's error body and statuses on these routes in /openapi.json."""
    document_errors(app, _ERRORS)
