"""Prepare: the wire-neutral inputs → one ``ChatCall``; then admission and the cache lookup.

In order: the stored history (or the body's inline history), the model group, the context fit, then
(``admit``) the request trace and log line, admission (permissions, input guardrails, limits, budget,
queue) and the cache lookup.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from llmserve.observability.context import current_model, model_load_wait_var
from llmserve.observability.tracing import current_span, operation_name, request_attributes, span
from llmserve.request_context import ANONYMOUS, RequestContext
from llmserve.services.accounting import CacheLookup
from llmserve.services.chat.call import ChatCall
from llmserve.services.chat.pipeline import Pipeline, logger, release
from llmserve.services.conversations import ConversationService
from llmserve.services.llm_events import log_llm_request
from llmserve.types import ChatInput, ChatMessage, GenerationOptions, TextInput


@dataclass(frozen=True)
class ChatAsk:
    """A chat request as the surfaces hand it over."""

    messages: Sequence[ChatMessage]
    options: GenerationOptions
    model: str | None = None
    conversation_id: str | None = None
    store: bool = False  # start a stored conversation when the body names none
    inline_history: Sequence[ChatMessage] = ()
    requirements: str | None = None  # hints for model "auto"


async def prepare_chat(p: Pipeline, ask: ChatAsk, ctx: RequestContext | None, *, stream: bool) -> ChatCall:
    ctx = ctx or RequestContext()
    context, new_turns = await history_context(
        p.conversations, ask.conversation_id, ask.inline_history, ask.messages, ctx.tenant
    )
    stored_history = len(context) > len(new_turns)
    conversation_id = ask.conversation_id
    if stream and ask.store and conversation_id is None:
        conversation_id = uuid.uuid4().hex  # a stream's headers name it before anything is stored
    request = ChatInput(tuple(context), ask.options)
    group = p.registry.route_group(ask.model, request, ask.requirements)
    current_model.set(group)
    model_load_wait_var.set(0.0)  # a batch worker answers many calls in one context: count this one's
    fitted, dropped = await p.accounting.fit(group, request, stored_history=stored_history)
    return ChatCall(
        ctx,
        ctx.received_at or time.perf_counter(),
        group,
        fitted,
        stream,
        context=list(fitted.messages) if isinstance(fitted, ChatInput) else [],
        new_turns=new_turns,
        conversation_id=conversation_id,
        persist=ask.store or ask.conversation_id is not None,
        history_dropped=dropped,
    )


def prepare_text(
    p: Pipeline,
    prompt: str,
    options: GenerationOptions,
    model: str | None,
    ctx: RequestContext | None,
    *,
    stream: bool,
) -> ChatCall:
    """A raw prompt (/v1/completions): no history, no chat template, no context fitting."""
    ctx = ctx or RequestContext()
    request = TextInput(prompt, options)
    group = p.registry.route_group(model, request, None)
    current_model.set(group)
    model_load_wait_var.set(0.0)
    return ChatCall(ctx, ctx.received_at or time.perf_counter(), group, request, stream)


async def history_context(
    conversations: ConversationService,
    conversation_id: str | None,
    inline_history: Sequence[ChatMessage],
    messages: Sequence[ChatMessage],
    owner: str = ANONYMOUS,
) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """The model's context and the turns to store.

    A stored conversation is the history and the body's inline history is ignored, so seed clients
    that echo back the returned history alongside a conversation_id get no duplicates. A new
    conversation (no id, or a client-chosen id not seen before) starts from the inline history.
    Another owner's conversation is not found (404) here, before admission or any model call.
    """
    stored: list[ChatMessage] = []
    if conversation_id is not None:
        turns = await conversations.history_if_any(conversation_id, owner=owner)
        stored = [ChatMessage(t.role, t.content) for t in turns or ()]
    if stored:
        return [*stored, *messages], list(messages)
    return [*inline_history, *messages], [*inline_history, *messages]


async def admit(p: Pipeline, call: ChatCall) -> CacheLookup | None:
    """Trace and log the request, admit it (guardrails may rewrite it), then look in the cache.
    A failed lookup gives the admission back."""
    _trace_request(call)
    _log_request(p, call)
    if p.admission is not None:
        with span("llmserve.admission"):
            call.admitted = await p.admission.enter(
                call.ctx.principal, call.ctx.tenant, call.group, call.request, call.ctx.priority
            )
        call.request = call.admitted.request
    call.cache_request = p.accounting.cache_request(call.group, call.request, call.ctx)
    try:
        with span("llmserve.cache.lookup") as lookup:
            hit = await p.accounting.lookup(call.cache_request)
            if lookup is not None:
                lookup.set_attribute("llmserve.cache_status", hit.kind if hit else "miss")
    except BaseException:
        await release(call)
        raise
    return hit


def _trace_request(call: ChatCall) -> None:
    if (current := current_span()) is not None:
        options = call.request.options
        current.set_attributes(
            request_attributes(call.group, options, operation=operation_name(call.request))
        )


def _log_request(p: Pipeline, call: ChatCall) -> None:
    request = call.request
    log_llm_request(
        logger,
        request_id=call.ctx.request_id,
        key_id=call.ctx.principal.key_id,
        model=call.group,
        endpoint="chat" if isinstance(request, ChatInput) else "completions",
        stream=call.stream,
        prompt_messages=request.messages if isinstance(request, ChatInput) else request.prompt,
        log_payloads=p.log_payloads,
    )
