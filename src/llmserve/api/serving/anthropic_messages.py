"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages body → the pipeline → a
``message`` body, or Anthropic's stream events (``anthropic_stream.py``); errors in Anthropic's shape.

The pipeline is the one every surface shares (``ChatService.answer`` / ``open_stream``), so keys,
limits, budgets, guardrails, the cache, routing and fallbacks, the ledger and the history apply here
as they do to Chat Completions.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson
from starlette.requests import Request

from llmserve.api.serving import anthropic_convert as convert
from llmserve.api.serving import anthropic_stream
from llmserve.api.serving.convert import request_context
from llmserve.api.serving.replies import JsonReply, StreamReply, answer_headers, stream_headers
from llmserve.errors import InvalidRequest
from llmserve.request_context import RequestContext
from llmserve.schemas.anthropic import AnthropicConversation, AnthropicMessagesRequest
from llmserve.services.chat import ChatAsk, ChatResult, ChatService
from llmserve.services.tokens import TokenService
from llmserve.types import ChatMessage


def context(request: Request) -> RequestContext:
    """As Chat Completions has it; with authentication off an Anthropic client's ``x-api-key`` (not a
    bearer token) is what keeps two clients' cached answers apart."""
    ctx = request_context(request)
    api_key = request.headers.get("x-api-key", "").strip()
    if ctx.api_key is None and api_key:
        tenant = "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:24]
        ctx = dataclasses.replace(ctx, tenant=tenant, api_key=tenant)
    return ctx


def refuse_untranslatable(body: AnthropicConversation) -> None:
    if (where := convert.untranslatable(body)) is not None:
        raise InvalidRequest(
            f"Model '{body.model}' does not accept this content ({where}): only text, tool_use and "
            "tool_result blocks and custom tools are served by its deployments",
            param=where,
        )


def _ask(body: AnthropicMessagesRequest) -> ChatAsk:
    refuse_untranslatable(body)
    return ChatAsk(convert.chat_messages(body), convert.options(body), model=body.model)


async def answer(chat: ChatService, body: AnthropicMessagesRequest, ctx: RequestContext) -> JsonReply:
    result = await chat.answer(_ask(body), ctx)
    return JsonReply(message_body(result), answer_headers(result))


async def stream(
    chat: ChatService, tokens: TokenService, body: AnthropicMessagesRequest, ctx: RequestContext
) -> StreamReply:
    ask = _ask(body)
    started = await chat.open_stream(ask, ctx)
    # message_start carries the prompt's tokens before any are generated: the group's own count
    # (the tokenizer of a local model; the provider's estimate for a remote one, which the real
    # count in message_delta then replaces).
    counted = await tokens.tokenize(started.route.group, messages=ask.messages)
    events = anthropic_stream.message_events(started, counted.token_count)
    return StreamReply(events, stream_headers(started))


async def count_tokens(tokens: TokenService, body: AnthropicConversation) -> dict[str, int]:
    """What the prompt would count as input tokens. Anthropic counts the tool definitions too; here they
    are counted as the JSON text the upstream receives, in one extra system message."""
    refuse_untranslatable(body)
    convert.openai_tool_choice(body.tool_choice)  # 400 for what messages would refuse
    messages = convert.chat_messages(body)
    if body.tools:
        definitions = orjson.dumps([tool.model_dump(exclude_none=True) for tool in body.tools]).decode()
        messages.insert(0, ChatMessage("system", definitions))
    counted = await tokens.tokenize(body.model, messages=messages)
    return {"input_tokens": counted.token_count}


def message_body(result: ChatResult) -> dict[str, Any]:
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
