"""Token counts and cost estimates before sending: /v1/tokenize, /v1/estimate (extensions)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from llmserve.api.auth import principal_of
from llmserve.api.deps import RegistryDep, ServicesDep
from llmserve.api.serving import convert
from llmserve.schemas.openai import ChatCompletionRequest
from llmserve.schemas.tokens import EstimateRequest, EstimateResponse, TokenizeRequest, TokenizeResponse
from llmserve.services.tokens import TokenService
from llmserve.types import ChatMessage

router = APIRouter(prefix="/v1", tags=["tokens"])


def _token_service(request: Request, registry: RegistryDep, services: ServicesDep) -> TokenService:
    # Stateless over the registry; the caller's input guardrails (with its key's overrides) apply.
    admission = services.chat.pipeline.admission
    guardrails = admission.guardrails if admission is not None else None
    if guardrails is not None:
        guardrails = guardrails.for_principal(principal_of(request).guardrails)
    return TokenService(registry, guardrails)


TokenServiceDep = Annotated[TokenService, Depends(_token_service)]


def _messages(body: TokenizeRequest) -> list[ChatMessage] | None:
    if body.messages is None:
        return None
    # The same conversion /v1/chat/completions applies, so the counts match what a chat would send.
    _, messages = convert.chat_messages(ChatCompletionRequest.model_construct(messages=body.messages))
    return messages


@router.post("/tokenize", response_model=TokenizeResponse)
async def tokenize(body: TokenizeRequest, tokens: TokenServiceDep) -> Response:
    result = await tokens.tokenize(body.model, messages=_messages(body), prompt=body.prompt)
    answer = {
        "model": result.group,
        "tokens": result.tokens,
        "count": result.token_count,
        "estimated": result.estimated,
    }
    # TokenizeResponse's shape, written by orjson straight from the ids: the response_model path
    # would validate and copy a list of up to 1.6 M ints twice, on the event loop, for 4 MB of text.
    return Response(orjson.dumps(answer), media_type="application/json")


@router.post("/estimate", response_model=EstimateResponse)
async def estimate(body: EstimateRequest, tokens: TokenServiceDep) -> EstimateResponse:
    result = await tokens.estimate(
        body.model, messages=_messages(body), prompt=body.prompt, max_tokens=body.reply_limit()
    )
    return EstimateResponse(
        model=result.group,
        prompt_tokens=result.prompt_tokens,
        max_completion_tokens=result.max_completion_tokens,
        estimated=result.estimated,
        context_window=result.context_window,
        input_cost_usd=float(result.input_cost_usd),
        max_output_cost_usd=float(result.max_output_cost_usd),
        max_total_cost_usd=float(result.max_total_cost_usd),
        input_cost_usd_exact=_plain(result.input_cost_usd),
        max_output_cost_usd_exact=_plain(result.max_output_cost_usd),
        max_total_cost_usd_exact=_plain(result.max_total_cost_usd),
    )


def _plain(value: Decimal) -> str:
    # Fixed-point, no exponent and no trailing zeros: "0.0000018", never "1.8E-6".
    return format(value.normalize(), "f") if value else "0"
