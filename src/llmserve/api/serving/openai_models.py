"""POST /v1/embeddings, GET /v1/models[/{id}]: the OpenAI shapes over the model registry."""

from __future__ import annotations

import base64
import struct

from llmserve.principal import Principal
from llmserve.schemas.openai import (
    EmbeddingOut,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ModelList,
    ModelOut,
)
from llmserve.services.chat import ChatService
from llmserve.services.models import ModelGroup, ModelRegistry


async def embeddings(chat: ChatService, body: EmbeddingRequest, principal: Principal) -> EmbeddingResponse:
    texts = body.texts()
    model, vectors = await chat.embed(texts, body.model, principal)
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


def model_list(registry: ModelRegistry) -> ModelList:
    return ModelList(data=[_model_out(group) for group in registry.groups()])


def model_entry(registry: ModelRegistry, model_id: str) -> ModelOut:
    return _model_out(registry.group(model_id))


def _model_out(group: ModelGroup) -> ModelOut:
    return ModelOut(id=group.name, created=group.created, owned_by=group.owned_by)
