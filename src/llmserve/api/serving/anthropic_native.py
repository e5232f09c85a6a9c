"""Which Messages requests may travel to an Anthropic upstream as the client sent them.

A group whose deployments (and every group it falls back to) are all Anthropic takes everything the
Messages API takes, images and thinking blocks included: the body goes through untouched
(``types.NativeRequest``, read by ``providers/anthropic.py``). A group with an Anthropic deployment
among others gets the body too, for that deployment, but only what translates for all of them. A
group with none gets neither: the request is translated, and the body is not even kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers

from llmserve.api.serving import anthropic_convert as convert
from llmserve.config import Settings
from llmserve.errors import InvalidRequest, LLMServeError
from llmserve.schemas.anthropic import AnthropicConversation
from llmserve.services.models import ModelRegistry
from llmserve.types import ChatMessage, NativeRequest

PROTOCOL_HEADERS = ("anthropic-version", "anthropic-beta")


@dataclass(frozen=True)
class Reach:
    """The providers a group's requests may reach: itself and the groups it falls back to."""

    any_anthropic: bool
    all_anthropic: bool


def reach(registry: ModelRegistry, settings: Settings, model: str | None) -> Reach:
    try:
        providers = [d.provider for d in _deployments(registry, settings, model)]
    except LLMServeError:  # an unknown model: the pipeline answers it with its own 404
        return Reach(False, False)
    anthropic = [provider == "anthropic" for provider in providers]
    return Reach(any(anthropic), bool(anthropic) and all(anthropic))


def _deployments(registry: ModelRegistry, settings: Settings, model: str | None) -> Iterator[Any]:
    fallbacks = {**settings.router.fallbacks}
    for name, more in settings.router.context_window_fallbacks.items():
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


def check_content(body: AnthropicConversation, where: Reach) -> bool:
    """True when the body translates fully; 400 where it does not and a non-Anthropic backend may
    answer (its images or thinking blocks would be lost without a word)."""
    position = convert.untranslatable(body)
    if position is not None and not where.all_anthropic:
        raise InvalidRequest(
            f"Model '{body.model}' does not accept this content ({position}): only text, tool_use and "
            "tool_result blocks and custom tools are served by its deployments (images, documents, "
            "thinking blocks and server tools need a model served by Anthropic deployments only)",
            param=position,
        )
    return position is None


def native_request(
    raw: dict[str, Any], messages: list[ChatMessage], headers: Headers, translatable: bool
) -> NativeRequest:
    forwarded = tuple((name, headers[name]) for name in PROTOCOL_HEADERS if name in headers)
    return NativeRequest("anthropic", raw, tuple(messages), forwarded, translatable)
