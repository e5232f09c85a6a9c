"""openai_models: embeddings (floats or the SDK's default base64) and the model list."""

from __future__ import annotations

import base64
import dataclasses
import struct

import pytest

from llmserve.api.serving import openai_models
from llmserve.errors import Forbidden
from llmserve.principal import ANONYMOUS_PRINCIPAL
from llmserve.schemas.openai import EmbeddingRequest
from tests.unit.api.serving.conftest import service


async def test_base64_embeddings_decode_to_the_same_floats() -> None:
    chat, _ = service()
    floats = await openai_models.embeddings(
        chat, EmbeddingRequest.model_validate({"input": ["a", "bb"]}), ANONYMOUS_PRINCIPAL
    )
    packed = await openai_models.embeddings(
        chat,
        EmbeddingRequest.model_validate({"input": ["a", "bb"], "encoding_format": "base64"}),
        ANONYMOUS_PRINCIPAL,
    )
    for plain, encoded in zip(floats.data, packed.data, strict=True):
        raw = base64.b64decode(str(encoded.embedding))
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == plain.embedding
    assert floats.usage.prompt_tokens == 2  # at least one token per text


async def test_a_key_scoped_to_other_models_gets_403_for_embeddings() -> None:
    # Embeddings skipped the key's model list: a key for one model reached every embeddings group.
    chat, _ = service()
    scoped = dataclasses.replace(ANONYMOUS_PRINCIPAL, models=("another",))
    with pytest.raises(Forbidden):
        await openai_models.embeddings(chat, EmbeddingRequest.model_validate({"input": "a"}), scoped)


def test_the_model_list_names_every_group() -> None:
    chat, _ = service()
    listed = openai_models.model_list(chat.registry)
    assert [m.id for m in listed.data] == ["g"]
    assert openai_models.model_entry(chat.registry, "g").owned_by == "llmserve"
