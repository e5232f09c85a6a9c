"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages body → the pipeline → a
``message`` body, or Anthropic's stream events (``anthropic_stream.py``); errors in Anthropic's shape.

The pipeline is the one every surface shares (``ChatService.answer`` / ``open_stream``), so keys,
limits, budgets, guardrails, the cache, routing and fallbacks, the ledger and the history apply here
as they do to Chat Completions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any

import orjson
from starlette.requests import Request

from llmserve.api.serving import anthropic_convert as convert
from llmserve.api.serving import anthropic_native as native
from llmserve.api.serving import anthropic_stream
from llmserve.api.serving.convert import request_context
from llmserve.api.serving.replies import JsonReply, StreamReply, answer_headers, stream_headers
from llmserve.config import Settings
from llmserve.errors import InvalidRequest, UpstreamError
from llmserve.providers.anthropic import AnthropicProvider
from llmserve.request_context import RequestContext
from llmserve.schemas.anthropic import EXTENSIONS, AnthropicConversation, AnthropicMessagesRequest
from llmserve.services.chat import ChatAsk, ChatResult, ChatService
from llmserve.services.models import ModelRegistry
from llmserve.services.tokens import TokenService
from llmserve.types import ChatMessage

logger = logging.getLogger(__name__)


def context(request: Request, body: AnthropicMessagesRequest) -> RequestContext:
    """As Chat Completions has it; with authentication off an Anthropic client's ``x-api-key`` (not a
    bearer token) is what keeps two clients' cached answers apart."""
    ctx = request_context(request, body.cache, body.priority)
    api_key = request.headers.get("x-api-key", "").strip()
    if ctx.api_key is None and api_key:
        tenant = "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:24]
        ctx = dataclasses.replace(ctx, tenant=tenant, api_key=tenant)
    return ctx


async def ask(
    request: Request, body: AnthropicMessagesRequest, registry: ModelRegistry, settings: Settings
) -> tuple[ChatAsk, RequestContext]:
    """The pipeline's question, with the client's own body where an Anthropic deployment may answer."""
    where = native.reach(registry, settings, body.model)
    translatable = native.check_content(body, where)
    messages = convert.chat_messages(body)
    options = convert.options(body)
    if where.any_anthropic:
        raw = orjson.loads(await request.body())  # the body as sent, every field the schema lets by
        upstream = {k: v for k, v in raw.items() if k not in EXTENSIONS}
        carried = native.native_request(upstream, messages, request.headers, translatable)
        options = dataclasses.replace(options, native=carried)
    question = ChatAsk(messages, options, model=body.model, conversation_id=body.conversation_id)
    return question, context(request, body)


async def answer(chat: ChatService, question: ChatAsk, ctx: RequestContext) -> JsonReply:
    result = await chat.answer(question, ctx)
    return JsonReply(message_body(result), answer_headers(result))


async def stream(
    chat: ChatService, tokens: TokenService, question: ChatAsk, ctx: RequestContext
) -> StreamReply:
    started = await chat.open_stream(question, ctx)
    # message_start carries the prompt's tokens before any are generated: the group's own count
    # (the tokenizer of a local model; the provider's estimate for a remote one, which the real
    # count in message_delta then replaces).
    events = anthropic_stream.message_events(
        started, await _prompt_tokens(tokens, started.route.group, question)
    )
    return StreamReply(events, stream_headers(started))


async def _prompt_tokens(tokens: TokenService, group: str, question: ChatAsk) -> int:
    """The count for message_start; 0 if it cannot be had. The stream is open (it holds its admission
    until its events run), so nothing may raise between here and its first event."""
    try:
        return (await tokens.tokenize(group, messages=question.messages)).token_count
    except Exception:
        logger.warning("message_start: the prompt of %s could not be counted", group, exc_info=True)
        return 0


async def count_tokens(
    request: Request,
    tokens: TokenService,
    body: AnthropicConversation,
    registry: ModelRegistry,
    settings: Settings,
) -> dict[str, int]:
    """What the prompt would count as input tokens: Anthropic's own count where the group is served by
    Anthropic; otherwise the model's (the local tokenizer, or a remote model's estimate), with the tool
    definitions counted as the JSON text an upstream receives, in one extra system message."""
    where = native.reach(registry, settings, body.model)
    native.check_content(body, where)
    convert.openai_tool_choice(body.tool_choice)  # 400 for what messages would refuse
    messages = convert.chat_messages(body)
    if where.all_anthropic and (exact := await _anthropic_count(request, tokens, registry, body, messages)):
        return {"input_tokens": exact}
    if body.tools:
        definitions = orjson.dumps([tool.model_dump(exclude_none=True) for tool in body.tools]).decode()
        messages.insert(0, ChatMessage("system", definitions))
    counted = await tokens.tokenize(body.model, messages=messages)
    return {"input_tokens": counted.token_count}


async def _anthropic_count(
    request: Request,
    tokens: TokenService,
    registry: ModelRegistry,
    body: AnthropicConversation,
    messages: list[ChatMessage],
) -> int | None:
    """The group's first deployment's count (POST /v1/messages/count_tokens upstream); None where that
    upstream cannot answer it (down, or an Anthropic-compatible server without the endpoint: a 404 is
    an InvalidRequest here), so the estimate stands in: the body passed our own validation already, and
    a count is advice, not worth a failed call."""
    provider = registry.group(body.model).providers[0]
    if not isinstance(provider, AnthropicProvider):
        return None
    if tokens.guardrails is not None:
        tokens.guardrails.check_size(messages, None)  # the size rules a message is held to, first
    raw = orjson.loads(await request.body())
    try:
        return await provider.count_native(native.native_request(raw, messages, request.headers, True))
    except (UpstreamError, InvalidRequest):
        logger.info("count_tokens: %s could not count; estimating", provider.name, exc_info=True)
        return None


def message_body(result: ChatResult) -> dict[str, Any]:
    if result.completion.native is not None:  # an Anthropic upstream's own message, under our id
        return {**result.completion.native, "id": f"msg_{result.message_id}", "model": result.model}
    choice = result.completion.choices[0]
    return {
        "id": f"msg_{result.message_id}",
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": convert.content_blocks(choice, result.route.deployment),
        "stop_reason": convert.stop_reason(choice.finish_reason),
        "stop_sequence": None,
        "usage": convert.usage_body(result.completion.usage),
    }
