"""ChatService: the request pipeline shared by the OpenAI, seed-native and WebSocket surfaces.

Resolve the model group, load stored history, fit it to the context, look in the cache, route the
call (router: deployment choice, retries, fallbacks, hedging), then store the exchange, the cache
entry and the ledger row. Streams come back from the router "primed": their first event is in hand
before any byte goes to the client, so up-front errors (unknown model, prompt too long, every
deployment down) become proper HTTP errors and failover stays invisible to the client.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from llmserve.errors import ConversationNotFound
from llmserve.observability.context import current_model
from llmserve.observability.events import log_llm_request, log_llm_response
from llmserve.observability.metrics import Metrics
from llmserve.observability.tracing import (
    current_span,
    operation_name,
    record_usage,
    request_attributes,
    span,
)
from llmserve.request_context import RequestContext
from llmserve.routing.route_info import RouteInfo
from llmserve.routing.telemetry import record_route
from llmserve.services.accounting import Accounting, CacheLookup
from llmserve.services.admission import Admission, Pass
from llmserve.services.answers import StreamCollector, replay
from llmserve.services.conversations import ConversationService, Turn
from llmserve.services.models import ModelRegistry
from llmserve.types import (
    ChatInput,
    ChatMessage,
    Choice,
    Completion,
    Delta,
    GenerationInput,
    GenerationOptions,
    StreamEvent,
    TextInput,
    Usage,
)

if TYPE_CHECKING:
    from llmserve.guardrails import OutputMasker

logger = logging.getLogger(__name__)

CACHE_DEPLOYMENT = "cache"
COST_HEADER = "x-llmserve-cost-usd"


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
    """A started stream: metadata known up front, then ``events``. Stores the exchange when it ends."""

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
    admitted: Pass | None = None

    @property
    def usage(self) -> Usage | None:
        return self.collected.usage


def gateway_overhead_ms(route: RouteInfo, started: float) -> float:
    """Time spent in llmserve itself: wall time so far minus waiting on providers (and backoff)."""
    return max(0.0, (time.perf_counter() - started - route.upstream_seconds) * 1000)


@dataclass
class _Answer:
    """What one call produced: from the router, or from the cache."""

    completion: Completion
    route: RouteInfo
    cache_status: str
    similarity: float | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Opened:
    events: AsyncIterator[StreamEvent]
    route: RouteInfo
    cache_status: str
    similarity: float | None
    admitted: Pass | None = None


class ChatService:
    def __init__(
        self,
        registry: ModelRegistry,
        conversations: ConversationService,
        accounting: Accounting | None = None,
        admission: Admission | None = None,
        log_payloads: bool = False,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.registry = registry
        self.conversations = conversations
        self.accounting = accounting or Accounting(registry)
        self.admission = admission
        self.log_payloads = log_payloads  # prompt and answer text in llm_* events (PII masked)
        self.metrics = metrics

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        *,
        model: str | None = None,
        conversation_id: str | None = None,
        store: bool = False,
        inline_history: Sequence[ChatMessage] = (),
        requirements: str | None = None,
        ctx: RequestContext | None = None,
    ) -> ChatResult:
        ctx = ctx or RequestContext()
        started = ctx.received_at or time.perf_counter()
        context, new_turns = await self._context(conversation_id, inline_history, messages)
        request: GenerationInput = ChatInput(tuple(context), options)
        group = self.registry.route_group(model, request, requirements)
        current_model.set(group)
        request = await self.accounting.fit(group, request)
        answer = await self._answer(group, request, ctx, started)
        message_id = uuid.uuid4().hex
        if store or conversation_id is not None:
            conversation_id = await self._record(
                conversation_id,
                new_turns,
                answer.completion.choices[0].text,
                answer.route.group,
                answer.completion.usage,
                message_id,
            )
        latency_ms = (time.perf_counter() - started) * 1000
        self._observe_overhead(answer.route, started)
        return ChatResult(
            answer.route.group,
            answer.completion,
            message_id,
            conversation_id,
            list(request.messages) if isinstance(request, ChatInput) else [],
            latency_ms,
            answer.route,
            started,
            answer.cache_status,
            answer.similarity,
            answer.headers,
        )

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        *,
        model: str | None = None,
        conversation_id: str | None = None,
        store: bool = False,
        inline_history: Sequence[ChatMessage] = (),
        requirements: str | None = None,
        ctx: RequestContext | None = None,
    ) -> ChatStream:
        ctx = ctx or RequestContext()
        started = ctx.received_at or time.perf_counter()
        context, new_turns = await self._context(conversation_id, inline_history, messages)
        if store and conversation_id is None:
            conversation_id = uuid.uuid4().hex
        request: GenerationInput = ChatInput(tuple(context), options)
        group = self.registry.route_group(model, request, requirements)
        current_model.set(group)
        request = await self.accounting.fit(group, request)
        opened = await self._open(group, request, ctx)
        stream = _new_stream(opened, conversation_id, started)
        persist = store or conversation_id is not None
        stream.events = self._tracked(stream, group, request, ctx, opened.events, new_turns, persist)
        self._observe_overhead(opened.route, started)
        return stream

    async def complete_text(
        self, prompt: str, options: GenerationOptions, model: str | None, ctx: RequestContext | None = None
    ) -> ChatResult:
        ctx = ctx or RequestContext()
        started = ctx.received_at or time.perf_counter()
        request = TextInput(prompt, options)
        group = self.registry.route_group(model, request, None)
        current_model.set(group)
        answer = await self._answer(group, request, ctx, started)
        latency_ms = (time.perf_counter() - started) * 1000
        self._observe_overhead(answer.route, started)
        return ChatResult(
            answer.route.group,
            answer.completion,
            uuid.uuid4().hex,
            None,
            [],
            latency_ms,
            answer.route,
            started,
            answer.cache_status,
            answer.similarity,
            answer.headers,
        )

    async def stream_text(
        self, prompt: str, options: GenerationOptions, model: str | None, ctx: RequestContext | None = None
    ) -> ChatStream:
        ctx = ctx or RequestContext()
        started = ctx.received_at or time.perf_counter()
        request = TextInput(prompt, options)
        group = self.registry.route_group(model, request, None)
        current_model.set(group)
        opened = await self._open(group, request, ctx)
        stream = _new_stream(opened, None, started)
        stream.events = self._tracked(stream, group, request, ctx, opened.events, [], False)
        self._observe_overhead(opened.route, started)
        return stream

    async def embed(self, texts: Sequence[str], model: str | None) -> tuple[str, list[list[float]]]:
        group = self.registry.route_group(model, None, None)
        current_model.set(group)
        return group, await self.registry.embed(group, texts)

    def _log_request(
        self, group: str, request: GenerationInput, ctx: RequestContext, *, stream: bool
    ) -> None:
        log_llm_request(
            logger,
            request_id=ctx.request_id,
            key_id=ctx.principal.key_id,
            model=group,
            endpoint="chat" if isinstance(request, ChatInput) else "completions",
            stream=stream,
            prompt_messages=request.messages if isinstance(request, ChatInput) else request.prompt,
            log_payloads=self.log_payloads,
        )

    def _log_response(
        self,
        ctx: RequestContext,
        route: RouteInfo,
        usage: Usage,
        cache_status: str,
        latency_ms: float,
        ttft_ms: float | None,
        completion: Completion | None,
    ) -> None:
        billed, cost = self.accounting.billed(route, usage, cache_status)
        log_llm_response(
            logger,
            request_id=ctx.request_id,
            key_id=ctx.principal.key_id,
            model=route.group,
            deployment=route.deployment,
            input_tokens=billed.prompt_tokens,
            output_tokens=billed.completion_tokens,
            cost_usd=float(cost),
            latency_ms=round(latency_ms, 2),
            ttft_ms=None if ttft_ms is None else round(ttft_ms, 2),
            cache_status=cache_status,
            attempts=route.attempts,
            completion_text=completion.choices[0].text if completion and completion.choices else None,
            log_payloads=self.log_payloads,
        )

    def _observe_overhead(self, route: RouteInfo, started: float) -> None:
        if self.metrics is not None:  # what x-llmserve-overhead-ms says, in seconds
            self.metrics.observe_overhead(gateway_overhead_ms(route, started) / 1000)

    async def _admit(self, group: str, request: GenerationInput, ctx: RequestContext) -> Pass | None:
        if self.admission is None:
            return None
        return await self.admission.enter(ctx.principal, ctx.tenant, group, request, ctx.priority)

    async def _admit_and_look_up(
        self, group: str, request: GenerationInput, ctx: RequestContext, *, stream: bool
    ) -> tuple[Pass | None, GenerationInput, CacheLookup | None]:
        """Shared by answers and streams: trace and log the request, admit it (guardrails may rewrite
        it), then look in the cache. A failed lookup gives the admission back."""
        _trace_request(group, request)
        self._log_request(group, request, ctx, stream=stream)
        with span("llmserve.admission"):
            admitted = await self._admit(group, request, ctx)
        if admitted is not None:
            request = admitted.request
        try:
            with span("llmserve.cache.lookup") as lookup:
                hit = await self.accounting.lookup(group, request, ctx)
                if lookup is not None:
                    lookup.set_attribute("llmserve.cache_status", hit.kind if hit else "miss")
        except BaseException:
            if admitted is not None:
                await admitted.settle(None, Decimal(0))
            raise
        return admitted, request, hit

    async def _answer(
        self, group: str, request: GenerationInput, ctx: RequestContext, started: float
    ) -> _Answer:
        admitted, request, hit = await self._admit_and_look_up(group, request, ctx, stream=False)
        try:
            if hit is not None:
                route = RouteInfo(group=hit.group, deployment=CACHE_DEPLOYMENT, attempts=0)
                answer = _Answer(hit.completion, route, hit.kind, hit.similarity)
            else:
                with span("llmserve.route", **{"llmserve.model_group": group}):
                    completion, route = await self.registry.router.complete(group, request)
                answer = _Answer(completion, route, "miss", None)
        except BaseException:
            if admitted is not None:
                await admitted.settle(None, Decimal(0))
            raise
        usage = answer.completion.usage
        record_route(current_span(), answer.route, answer.cache_status)
        record_usage(current_span(), usage, [c.finish_reason for c in answer.completion.choices])
        billed, cost = self.accounting.billed(answer.route, usage, answer.cache_status)
        if admitted is not None:
            await admitted.settle(billed, cost)
            answer.headers = dict(admitted.headers)
        # What this answer cost (a cache hit costs 0): clients such as `llmserve batch run` sum it.
        answer.headers[COST_HEADER] = f"{cost:f}"
        if answer.cache_status == "miss":
            await self.accounting.remember(group, request, ctx, answer.completion, answer.route.group)
        latency_ms = (time.perf_counter() - started) * 1000
        await self.accounting.charge(ctx, answer.route, usage, answer.cache_status, latency_ms)
        self._log_response(ctx, answer.route, usage, answer.cache_status, latency_ms, None, answer.completion)
        if admitted is not None:  # output guardrails: what leaves llmserve is masked
            answer.completion = _masked(answer.completion, admitted)
        return answer

    async def _open(self, group: str, request: GenerationInput, ctx: RequestContext) -> _Opened:
        admitted, request, hit = await self._admit_and_look_up(group, request, ctx, stream=True)
        if hit is not None:
            route = RouteInfo(group=hit.group, deployment=CACHE_DEPLOYMENT, attempts=0)
            return _Opened(replay(hit.completion), route, hit.kind, hit.similarity, admitted)
        try:
            # The router hands the stream back once its first event is in hand: failover happens before.
            with span("llmserve.route", **{"llmserve.model_group": group}):
                events, route = await self.registry.router.stream(group, request)
        except BaseException:
            if admitted is not None:
                await admitted.settle(None, Decimal(0))
            raise
        return _Opened(events, route, "miss", None, admitted)

    async def _context(
        self,
        conversation_id: str | None,
        inline_history: Sequence[ChatMessage],
        messages: Sequence[ChatMessage],
    ) -> tuple[list[ChatMessage], list[ChatMessage]]:
        """The model's context and the turns to store.

        A stored conversation is the history and the body's inline history is ignored, so seed clients
        that echo back the returned history alongside a conversation_id get no duplicates. A new
        conversation (no id, or a client-chosen id not seen before) starts from the inline history.
        """
        stored: list[ChatMessage] = []
        if conversation_id is not None:
            try:
                stored = [
                    ChatMessage(t.role, t.content) for t in await self.conversations.history(conversation_id)
                ]
            except ConversationNotFound:
                stored = []
        if stored:
            return [*stored, *messages], list(messages)
        return [*inline_history, *messages], [*inline_history, *messages]

    async def _tracked(
        self,
        stream: ChatStream,
        group: str,
        request: GenerationInput,
        ctx: RequestContext,
        events: AsyncIterator[StreamEvent],
        new_messages: Sequence[ChatMessage],
        persist: bool,
    ) -> AsyncIterator[StreamEvent]:
        admitted = stream.admitted
        if admitted is not None:
            request = admitted.request
        maskers = _Maskers(admitted)
        timed = self.metrics if stream.cache_status == "miss" else None  # a replay's pace says nothing
        last: float | None = None
        first_token_at: float | None = None
        try:
            async for event in events:
                stream.collected.feed(event)
                if first_token_at is None and isinstance(event, Delta) and event.text:
                    first_token_at = time.perf_counter()
                if timed is not None and isinstance(event, Delta) and event.text:
                    now = time.perf_counter()
                    if last is None:
                        timed.observe_first_token(stream.model, now - stream.started)
                    else:
                        timed.observe_inter_token(stream.model, now - last)
                    last = now
                yield maskers.apply(event)
        finally:
            # At once, not at garbage collection: this is how a client's disconnect reaches the upstream.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            if admitted is not None:
                usage = stream.collected.usage
                if usage is None:
                    await admitted.settle(None, Decimal(0))
                else:
                    await admitted.settle(*self.accounting.billed(stream.route, usage, stream.cache_status))
        record_route(current_span(), stream.route, stream.cache_status)
        record_usage(current_span(), stream.collected.usage)
        # Only a stream that ran to its end is stored; a client that left gets nothing half-written.
        usage = stream.collected.usage
        if usage is None:
            return
        latency_ms = (time.perf_counter() - stream.started) * 1000
        await self.accounting.charge(ctx, stream.route, usage, stream.cache_status, latency_ms)
        ttft_ms = None if first_token_at is None else (first_token_at - stream.started) * 1000
        self._log_response(
            ctx, stream.route, usage, stream.cache_status, latency_ms, ttft_ms, stream.collected.completion()
        )
        completion = stream.collected.completion()
        if stream.cache_status == "miss" and completion is not None:
            await self.accounting.remember(group, request, ctx, completion, stream.model)
        if persist:
            await self._record(
                stream.conversation_id,
                new_messages,
                maskers.masked_text(stream.collected.text(0)),
                stream.model,
                usage,
                stream.message_id,
            )

    async def _record(
        self,
        conversation_id: str | None,
        messages: Sequence[ChatMessage],
        reply: str,
        model: str,
        usage: Usage,
        message_id: str,
    ) -> str:
        conversation_id, _ = await self.conversations.record_exchange(
            conversation_id,
            [Turn(m.role, m.content) for m in messages],
            reply,
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            reply_id=message_id,
        )
        return conversation_id


def _new_stream(opened: _Opened, conversation_id: str | None, started: float) -> ChatStream:
    return ChatStream(
        opened.route.group,
        uuid.uuid4().hex,
        conversation_id,
        int(time.time()),
        opened.events,
        opened.route,
        started,
        opened.cache_status,
        opened.similarity,
        admitted=opened.admitted,
        headers=opened.admitted.headers if opened.admitted else {},
    )


def _trace_request(group: str, request: GenerationInput) -> None:
    if (current := current_span()) is not None:
        current.set_attributes(request_attributes(group, request.options, operation=operation_name(request)))


def _masked(completion: Completion, admitted: Pass) -> Completion:
    if admitted.guardrails is None or not admitted.guardrails.masks_output:
        return completion
    choices = [
        Choice(c.index, admitted.mask(c.text), c.finish_reason, c.tool_calls) for c in completion.choices
    ]
    return Completion(choices=choices, usage=completion.usage)


class _Maskers:
    """Output guardrails on a stream: one masker per choice, holding back what could still be PII."""

    def __init__(self, admitted: Pass | None) -> None:
        self._admitted = admitted
        self._by_choice: dict[int, OutputMasker] = {}

    def apply(self, event: StreamEvent) -> StreamEvent:
        if self._admitted is None or not isinstance(event, Delta):
            return event
        masker = self._by_choice.get(event.index)
        if masker is None:
            masker = self._admitted.output_masker()
            if masker is None:
                return event
            self._by_choice[event.index] = masker
        text = masker.feed(event.text)
        if event.finish_reason is not None:
            text += masker.flush()
        return Delta(event.index, text, event.finish_reason, event.tool_calls)

    def masked_text(self, text: str) -> str:
        return text if self._admitted is None else self._admitted.mask(text)
