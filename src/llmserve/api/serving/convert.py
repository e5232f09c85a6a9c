"""Wire requests → the backend-neutral inputs the services take."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from starlette.requests import HTTPConnection

from llmserve.errors import InvalidRequest
from llmserve.observability.context import received_at_var, request_id_var
from llmserve.principal import ANONYMOUS_PRINCIPAL, PRIORITY_FLOOR_SCOPE_KEY, Principal
from llmserve.request_context import ANONYMOUS, RequestContext
from llmserve.schemas.common import SeedTurn
from llmserve.schemas.openai import CacheControl, ChatCompletionRequest, CompletionRequest, SamplingFields
from llmserve.schemas.seed import SeedChatRequest
from llmserve.types import ChatMessage, GenerationOptions


def sampling_options(request: SamplingFields, max_tokens: int | None, **extra: object) -> GenerationOptions:
    return GenerationOptions(
        max_tokens=max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        n=request.n,
        stop=request.stop_sequences(),
        seed=request.seed,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        ignore_eos=request.ignore_eos,
        **extra,  # type: ignore[arg-type]
    )


def chat_options(request: ChatCompletionRequest) -> GenerationOptions:
    both = request.max_tokens is not None and request.max_completion_tokens is not None
    if both and request.max_tokens != request.max_completion_tokens:
        raise InvalidRequest("Send max_tokens or max_completion_tokens, not both", param="max_tokens")
    return sampling_options(
        request,
        request.max_completion_tokens or request.max_tokens,
        tools=tuple(request.tools or ()),
        tool_choice=request.tool_choice,
        response_format=request.response_format,
        logprobs=bool(request.logprobs),
        clamp_max_tokens=request.prompt is not None,
    )


def completion_options(request: CompletionRequest) -> GenerationOptions:
    if request.suffix:
        raise InvalidRequest("suffix is not supported", param="suffix")
    if request.logprobs:
        raise InvalidRequest("logprobs are not supported", param="logprobs")
    if request.best_of not in (None, 1, request.n):
        raise InvalidRequest("best_of is not supported", param="best_of")
    return sampling_options(request, request.max_tokens)


def chat_messages(request: ChatCompletionRequest) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """(inline history, new messages): the seed body shape carries its history separately."""
    if request.prompt is not None:
        return turns(request.history or []), [ChatMessage("user", request.prompt)]
    assert request.messages is not None  # the schema requires messages or prompt
    converted = []
    for position, message in enumerate(request.messages):
        if message.has_non_text_parts():
            raise InvalidRequest(
                "Only text content parts are supported", param=f"messages.{position}.content"
            )
        # 'developer' is OpenAI's newer name for 'system'; chat templates know only the latter.
        role = "system" if message.role == "developer" else message.role
        converted.append(
            ChatMessage(
                role,
                message.text(),
                tool_calls=tuple(message.tool_calls or ()),
                tool_call_id=message.tool_call_id,
                name=message.name,
            )
        )
    return [], converted


def turns(history: Sequence[SeedTurn]) -> list[ChatMessage]:
    return [ChatMessage(turn.role, turn.content) for turn in history]


def seed_options(request: SeedChatRequest) -> GenerationOptions:
    return GenerationOptions(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        clamp_max_tokens=True,
    )


def single_prompt(request: CompletionRequest) -> str:
    if isinstance(request.prompt, str):
        return request.prompt
    if len(request.prompt) > 1:
        raise InvalidRequest("Send one prompt per request; use the Batch API for many", param="prompt")
    return request.prompt[0]


def request_context(
    http_request: HTTPConnection, cache: CacheControl | None = None, priority: int | None = None
) -> RequestContext:
    """Who is asking (the tenant caches and limits are scoped to) and the body's cache controls.

    With authentication on, the tenant is the caller's key (``request.state.principal``, set by
    ``api.auth.authenticate``). With it off (or where that dependency did not run) the tenant is a
    digest of the bearer token the client sent, so two clients with different tokens never share
    cached answers; no token is the anonymous tenant.
    """
    principal: Principal | None = getattr(http_request.state, "principal", None)
    if principal is not None and (principal.key_id is not None or principal.is_master):
        tenant, api_key = principal.tenant, principal.key_id
    else:
        authorization = http_request.headers.get("authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        tenant = "key:" + hashlib.sha256(token.encode()).hexdigest()[:24] if token else ANONYMOUS
        api_key = tenant if token else None
    floor = http_request.scope.get(PRIORITY_FLOOR_SCOPE_KEY)
    if isinstance(floor, int):  # batch and async work never outranks interactive traffic
        priority = max(priority, floor) if priority is not None else floor
    return RequestContext(
        tenant=tenant,
        request_id=request_id_var.get(),
        api_key=api_key,
        no_cache=bool(cache and cache.no_cache),
        no_store=bool(cache and cache.no_store),
        cache_ttl=float(cache.ttl) if cache and cache.ttl is not None else None,
        cache_namespace=cache.namespace if cache else None,
        cache_opt_in=cache is not None,
        received_at=received_at_var.get(),
        principal=principal or ANONYMOUS_PRINCIPAL,
        priority=priority,
    )
