"""Answer: a non-streamed call, from the cache or through the router, then settled."""

from __future__ import annotations

import time
import uuid

from llmserve.observability.tracing import span
from llmserve.routing.route_info import RouteInfo
from llmserve.services.chat.call import CACHE_DEPLOYMENT, COST_HEADER, ChatCall, ChatResult, Outcome
from llmserve.services.chat.masking import masked_completion
from llmserve.services.chat.pipeline import Pipeline, release
from llmserve.services.chat.prepare import admit
from llmserve.services.chat.settle import settle
from llmserve.types import Completion


async def answer(p: Pipeline, call: ChatCall) -> ChatResult:
    hit = await admit(p, call)
    similarity = hit.similarity if hit is not None else None
    try:
        if hit is not None:
            completion = hit.completion
            route = RouteInfo(group=hit.group, deployment=CACHE_DEPLOYMENT, attempts=0)
        else:
            with span("llmserve.route", **{"llmserve.model_group": call.group}):
                completion, route = await p.registry.router.complete(call.group, call.request)
    except BaseException:
        await release(call)
        raise
    status = hit.kind if hit is not None else "miss"
    message_id = uuid.uuid4().hex
    outcome = Outcome(route, completion.usage, completion, status, _first_text(completion))
    settled = await settle(p, call, outcome, message_id)
    headers = call.headers()
    # What this answer cost (a cache hit costs 0): clients such as `llmserve batch run` sum it.
    headers[COST_HEADER] = f"{settled.bill.cost:f}"
    p.observe_overhead(route, call.started)
    return ChatResult(
        route.group,
        masked_completion(completion, call.admitted),  # output guardrails: what leaves is masked
        message_id,
        settled.conversation_id,
        call.context,
        (time.perf_counter() - call.started) * 1000,
        route,
        call.started,
        status,
        similarity,
        headers,
    )


def _first_text(completion: Completion) -> str:
    return completion.choices[0].text if completion.choices else ""
