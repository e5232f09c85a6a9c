"""The values one request carries through the pipeline: the call itself, and what it hands back.

``ChatCall`` is built once by the prepare step and passed forward through admission, the answer or
the stream, and the settle step; nothing is looked up or computed twice along the way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmserve.observability.context import model_load_wait_var
from llmserve.request_context import RequestContext
from llmserve.routing.route_info import RouteInfo
from llmserve.services.chat.replay import StreamCollector
from llmserve.types import ChatMessage, Completion, GenerationInput, StreamEvent, Usage

if TYPE_CHECKING:
    from llmserve.cache.entries import CacheRequest
    from llmserve.services.admission import Pass

CACHE_DEPLOYMENT = "cache"
COST_HEADER = "x-llmserve-cost-usd"
# How many of a stored conversation's oldest messages were left out to fit the model's context.
HISTORY_DROPPED_HEADER = "x-llmserve-history-dropped"


@dataclass
class ChatCall:
    """One request on its way through the pipeline."""

    ctx: RequestContext
    started: float  # perf_counter() when the request reached llmserve
    group: str
    request: GenerationInput  # fitted to the context; after admission, as input guardrails left it
    stream: bool
    context: list[ChatMessage] = field(default_factory=list)  # the fitted chat messages
    new_turns: list[ChatMessage] = field(default_factory=list)  # what the exchange stores
    conversation_id: str | None = None
    persist: bool = False  # store the exchange in the conversation history
    admitted: Pass | None = None
    cache_request: CacheRequest | None = None  # built once, after admission: lookup and store share it
    history_dropped: int = 0  # oldest stored messages left out so the conversation fits the context

    def headers(self) -> dict[str, str]:
        """What the answer's headers say of this call: the caller's limits, a shortened history."""
        headers = dict(self.admitted.headers) if self.admitted is not None else {}
        if self.history_dropped:
            headers[HISTORY_DROPPED_HEADER] = str(self.history_dropped)
        return headers

    def masked(self, text: str) -> str:
        """Text as it leaves llmserve: through the output guardrails where the caller has them."""
        return text if self.admitted is None else self.admitted.mask(text)


@dataclass(frozen=True)
class Outcome:
    """What one call produced, as the settle step books it."""

    route: RouteInfo
    usage: Usage
    completion: Completion | None  # None: a stream that cannot be rebuilt (tool-call fragments)
    cache_status: str  # hit | semantic-hit | miss
    reply: str  # choice 0's text, as the model wrote it: what the conversation stores (masked)
    ttft_ms: float | None = None


@dataclass
class ChatResult:
    model: str
    completion: Completion
    message_id: str
    conversation_id: str | None
    context: list[ChatMessage]
    latency_ms: float
    route: RouteInfo
    started: float  # perf_counter() when the request entered the service
    cache_status: str = "miss"  # hit | semantic-hit | miss
    cache_similarity: float | None = None
    headers: dict[str, str] = field(default_factory=dict)  # e.g. x-ratelimit-*

    @property
    def text(self) -> str:
        return self.completion.choices[0].text


@dataclass
class ChatStream:
    """A started stream: metadata known up front, then ``events``. Settles the call when it ends."""

    model: str
    message_id: str
    conversation_id: str | None
    created: int
    events: AsyncIterator[StreamEvent]
    route: RouteInfo
    started: float
    cache_status: str = "miss"
    cache_similarity: float | None = None
    collected: StreamCollector = field(default_factory=StreamCollector)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def usage(self) -> Usage | None:
        return self.collected.usage


def gateway_overhead_ms(route: RouteInfo, started: float) -> float:
    """Time spent in llmserve itself: wall time so far minus waiting on providers (and backoff) and
    on a local model's first load."""
    waited = route.upstream_seconds + model_load_wait_var.get()
    return max(0.0, (time.perf_counter() - started - waited) * 1000)
