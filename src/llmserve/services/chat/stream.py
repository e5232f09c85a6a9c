"""Stream: open a streamed call (the cache replays, or the router hands back a primed stream), then
pass its events on, timed and masked, and settle the call when the last one has gone out.

Only a stream that ran to its end is settled in full (ledger, cache, history); one the client left
gives its admission back and stores nothing half-written.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

from llmserve.observability.context import on_request_end
from llmserve.observability.metrics import Metrics
from llmserve.observability.tracing import span
from llmserve.routing.route_info import RouteInfo
from llmserve.services.chat.call import CACHE_DEPLOYMENT, ChatCall, ChatStream, Outcome
from llmserve.services.chat.masking import StreamMaskers, masks_output
from llmserve.services.chat.pipeline import Pipeline, release
from llmserve.services.chat.prepare import admit
from llmserve.services.chat.replay import replay
from llmserve.services.chat.settle import settle
from llmserve.types import Delta, StreamEvent


async def open_stream(p: Pipeline, call: ChatCall) -> ChatStream:
    hit = await admit(p, call)
    if hit is not None:
        route = RouteInfo(group=hit.group, deployment=CACHE_DEPLOYMENT, attempts=0)
        events, status = replay(hit.completion), hit.kind
    else:
        try:
            # The router hands the stream back once its first event is in hand: failover happens before.
            with span("llmserve.route", **{"llmserve.model_group": call.group}):
                events, route = await p.registry.router.stream(call.group, call.request)
        except BaseException:
            await release(call)
            raise
        status = "miss"
    stream = ChatStream(
        route.group,
        uuid.uuid4().hex,
        call.conversation_id,
        int(time.time()),
        events,
        route,
        call.started,
        status,
        hit.similarity if hit is not None else None,
        headers=call.headers(),
    )
    tracked = _Tracked(p, call, stream, events)
    stream.events = tracked
    on_request_end(tracked.aclose)
    p.observe_overhead(route, call.started)
    return stream


class _Tracked:
    """The stream's events as the surface reads them, closable even before the first is read.

    A client that leaves between the answer's head and its first event never starts the surface's
    generator, so no ``finally`` of it runs: the admission slot and the upstream connection stayed
    taken. ``aclose`` (registered to run when the HTTP request ends) frees both then; on a stream that
    ran, it is the generator's own close (a no-op once it has finished).
    """

    def __init__(
        self, p: Pipeline, call: ChatCall, stream: ChatStream, events: AsyncIterator[StreamEvent]
    ) -> None:
        self._call = call
        self._upstream = events
        self._events = _tracked(p, call, stream, events)
        self._started = False
        self._closed = False

    def __aiter__(self) -> _Tracked:
        return self

    async def __anext__(self) -> StreamEvent:
        self._started = True
        return await anext(self._events)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started:
            await self._events.aclose()
            return
        await _close(self._upstream)
        await release(self._call)


class _TokenTimer:
    """Time to first token and between tokens; the metrics only for live streams (a replay's pace
    says nothing about the model)."""

    def __init__(self, metrics: Metrics | None, model: str, started: float) -> None:
        self._metrics = metrics
        self._model = model
        self._started = started
        self._last: float | None = None
        self.first_token_at: float | None = None

    def observe(self, event: StreamEvent) -> None:
        if not isinstance(event, Delta) or not event.text:
            return
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        if self._metrics is not None:
            if self._last is None:
                self._metrics.observe_first_token(self._model, now - self._started)
            else:
                self._metrics.observe_inter_token(self._model, now - self._last)
        self._last = now

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token_at is None else (self.first_token_at - self._started) * 1000


async def _tracked(
    p: Pipeline, call: ChatCall, stream: ChatStream, events: AsyncIterator[StreamEvent]
) -> AsyncGenerator[StreamEvent, None]:
    maskers = (
        StreamMaskers(call.admitted) if call.admitted is not None and masks_output(call.admitted) else None
    )
    timer = _TokenTimer(p.metrics if stream.cache_status == "miss" else None, stream.model, stream.started)
    try:
        async for event in events:
            stream.collected.feed(event)
            timer.observe(event)
            yield event if maskers is None else maskers.apply(event)
    except BaseException:
        await _close(events)
        await release(call)
        raise
    await _close(events)
    usage = stream.collected.usage
    if usage is None:  # the upstream ended without its usage: nothing to bill or store
        await release(call)
        return
    completion = stream.collected.completion()
    outcome = Outcome(
        stream.route, usage, completion, stream.cache_status, stream.collected.text(0), timer.ttft_ms
    )
    await settle(p, call, outcome, stream.message_id)


async def _close(events: AsyncIterator[StreamEvent]) -> None:
    """At once, not at garbage collection: this is how a client's disconnect reaches the upstream."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
