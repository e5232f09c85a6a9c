"""Which /v1/responses requests carry the client's own body, for deployments whose upstream speaks
the Responses API (``responses_api: native``), and that body.

A group that can reach such a deployment (itself or a group it falls back to) gets the body in
``GenerationOptions.native``; the provider (``providers/openai_responses_native.py``) sends it where
the deployment is native and the pipeline left the messages alone, and makes the chat call otherwise.
A group with none gets no body: the request is translated, as before.

llmserve owns the state, so the body's ``input`` is the whole context the chat call would carry: the
stored chain named by ``previous_response_id`` (sent as items, without llmserve's item ids, which
mean nothing upstream) and then this request's input as the client sent it. The client's other
fields travel as sent, the ones the pipeline does not know included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmserve.config import ModelDeployment
from llmserve.errors import LLMServeError
from llmserve.providers.openai_responses_native import PROTOCOL
from llmserve.schemas.responses import ResponsesRequest
from llmserve.services.models import ModelRegistry
from llmserve.types import ChatMessage, NativeRequest


def reaches_native(registry: ModelRegistry, model: str | None) -> bool:
    try:
        return any(d.responses_api == "native" for d in _deployments(registry, model))
    except LLMServeError:  # an unknown model: the pipeline answers it with its own 404
        return False


def _deployments(registry: ModelRegistry, model: str | None) -> Iterator[ModelDeployment]:
    """The deployments of the group and of every group it may fall back to."""
    settings = registry.router.settings
    fallbacks = {**settings.fallbacks}
    for name, more in settings.context_window_fallbacks.items():
        fallbacks[name] = [*fallbacks.get(name, []), *more]
    seen: set[str] = set()
    pending = [registry.group(model).name]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        yield from registry.group(name).deployments
        pending.extend(fallbacks.get(name, []))


def native_request(
    body: ResponsesRequest,
    prior: list[dict[str, Any]],
    items: list[dict[str, Any]],
    messages: list[ChatMessage],
) -> NativeRequest:
    """``items``: this input normalised, references resolved (a reference names an item llmserve
    stores, which the upstream does not have); ``messages``: the chat call's, which the provider
    compares to what reaches it."""
    sent = body.model_dump(by_alias=True, exclude_unset=True)
    sent["input"] = [
        *(_stored(item) for item in prior if item["type"] != "reasoning"),
        *_current(body, items),
    ]
    return NativeRequest(PROTOCOL, sent, tuple(messages))


def _stored(item: dict[str, Any]) -> dict[str, Any]:
    # llmserve's ids: an upstream that stores nothing (store false) cannot resolve them.
    return {name: value for name, value in item.items() if name != "id"}


def _current(body: ResponsesRequest, items: list[dict[str, Any]]) -> list[Any]:
    if isinstance(body.input, str):
        return [{"type": "message", "role": "user", "content": body.input}]
    # A reasoning item is only worth sending with its encrypted content; a bare id would name an
    # item the upstream does not keep. A reference goes as the item it names.
    sent = []
    for item, resolved in zip(body.input, items, strict=True):
        if item.get("type") == "item_reference":
            sent.append(_stored(resolved))
        elif item.get("type") != "reasoning" or item.get("encrypted_content"):
            sent.append(item)
    return sent
