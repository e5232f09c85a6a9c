"""Settle: the one ending of every answered call, streamed or not.

In order: the bill (tokens and cost, computed once) → admission released with the real counts → the
answer stored in the cache → the ledger row and token counters → the trace attributes and the
``llm_response`` log line → the exchange stored in the conversation history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llmserve.observability.tracing import current_span, record_usage
from llmserve.routing.telemetry import record_route
from llmserve.services.accounting import Bill
from llmserve.services.chat.call import ChatCall, Outcome
from llmserve.services.chat.pipeline import Pipeline, logger
from llmserve.services.conversations import Turn
from llmserve.services.llm_events import log_llm_response


@dataclass(frozen=True)
class Settled:
    bill: Bill
    latency_ms: float
    conversation_id: str | None


async def settle(p: Pipeline, call: ChatCall, outcome: Outcome, message_id: str) -> Settled:
    bill = p.accounting.bill(outcome.route, outcome.usage, outcome.cache_status)
    if call.admitted is not None:
        await call.admitted.settle(bill.usage, bill.cost)
    if outcome.cache_status == "miss" and outcome.completion is not None:
        await p.accounting.remember(call.cache_request, outcome.completion, outcome.route.group)
    latency_ms = (time.perf_counter() - call.started) * 1000
    await p.accounting.charge(call.ctx, outcome.route, bill, outcome.cache_status, latency_ms)
    _trace(outcome)
    _log_response(p, call, outcome, bill, latency_ms)
    conversation_id = call.conversation_id
    if call.persist:
        conversation_id = await _store_exchange(p, call, outcome, message_id)
    return Settled(bill, latency_ms, conversation_id)


def _trace(outcome: Outcome) -> None:
    current = current_span()
    record_route(current, outcome.route, outcome.cache_status)
    finishes = [c.finish_reason for c in outcome.completion.choices] if outcome.completion else []
    record_usage(current, outcome.usage, finishes)


def _log_response(p: Pipeline, call: ChatCall, outcome: Outcome, bill: Bill, latency_ms: float) -> None:
    completion = outcome.completion
    log_llm_response(
        logger,
        request_id=call.ctx.request_id,
        key_id=call.ctx.principal.key_id,
        model=outcome.route.group,
        deployment=outcome.route.deployment,
        input_tokens=bill.usage.prompt_tokens,
        output_tokens=bill.usage.completion_tokens,
        cost_usd=float(bill.cost),
        latency_ms=round(latency_ms, 2),
        ttft_ms=None if outcome.ttft_ms is None else round(outcome.ttft_ms, 2),
        cache_status=outcome.cache_status,
        attempts=outcome.route.attempts,
        completion_text=completion.choices[0].text if completion and completion.choices else None,
        log_payloads=p.log_payloads,
    )


async def _store_exchange(p: Pipeline, call: ChatCall, outcome: Outcome, message_id: str) -> str:
    """The new turns and the reply as the caller saw it (output guardrails applied)."""
    conversation_id, _ = await p.conversations.record_exchange(
        call.conversation_id,
        [Turn(m.role, m.content) for m in call.new_turns],
        call.masked(outcome.reply),
        model=outcome.route.group,
        prompt_tokens=outcome.usage.prompt_tokens,
        completion_tokens=outcome.usage.completion_tokens,
        reply_id=message_id,
        owner=call.ctx.tenant,
    )
    return conversation_id
