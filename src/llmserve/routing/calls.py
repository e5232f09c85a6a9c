"""One call to one deployment, with its bookkeeping: in-flight count, stats, breaker.

A streamed call is "primed" here: it counts as answered once its first event is in hand, and the
``RoutedStream`` handed back replays that event, then the rest, and settles the stats when it ends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from llmserve.errors import UpstreamError
from llmserve.observability.context import model_load_wait_var
from llmserve.routing.breaker import is_breaker_fault
from llmserve.routing.deployment import Deployment
from llmserve.routing.retry import is_client_error
from llmserve.routing.telemetry import UNTRACED_ATTEMPT, AttemptTrace, trace_attempt
from llmserve.types import Completion, GenerationInput, StreamEvent, Usage

if TYPE_CHECKING:
    from llmserve.routing.route_info import RouteInfo

logger = logging.getLogger(__name__)


def settle_failure(deployment: Deployment, exc: BaseException) -> None:
    """Book a call that raised: a deployment failure (stats, breaker), or a neutral end (the client's
    own error, a cancellation) that only frees a half-open probe slot."""
    if isinstance(exc, Exception) and not is_client_error(exc):
        deployment.stats.record_failure(exc)
    if is_breaker_fault(exc):
        deployment.breaker.record_failure()
    else:
        deployment.breaker.release()


async def call_complete(
    deployment: Deployment, request: GenerationInput, clock: Callable[[], float], attempt: int = 1
) -> Completion:
    stats = deployment.stats
    stats.begin()
    started = clock()
    traced = trace_attempt(deployment, request, attempt)
    try:
        with traced.activated():
            completion = await deployment.provider.complete(request)
    except BaseException as exc:
        traced.end(exc)
        stats.end()
        settle_failure(deployment, exc)
        raise
    traced.observe(completion)
    traced.end()
    stats.end()
    stats.observe_latency(clock() - started)
    stats.add_tokens(completion.usage.total_tokens)
    stats.record_success()
    deployment.breaker.record_success()
    return completion


async def open_stream(
    deployment: Deployment, request: GenerationInput, info: RouteInfo, clock: Callable[[], float]
) -> RoutedStream:
    """Start a stream and wait for its first event; a failure before it is an ordinary failed call."""
    stats = deployment.stats
    stats.begin()
    started = clock()
    traced = trace_attempt(deployment, request, info.attempts)
    iterator: AsyncIterator[StreamEvent] | None = None
    try:
        iterator = deployment.provider.stream(request)
        with traced.activated():  # the request goes out now: it carries this attempt's traceparent
            first = await anext(iterator)
    except StopAsyncIteration:
        empty = UpstreamError(
            f"{deployment.id}: the stream ended before its first event",
            kind="protocol",
            retryable=True,
            deployment=deployment.id,
        )
        traced.end(empty)
        stats.end()
        settle_failure(deployment, empty)
        raise empty from None
    except BaseException as exc:
        traced.end(exc)
        stats.end()
        settle_failure(deployment, exc)
        if iterator is not None:
            await close_iterator(iterator)
        raise
    stats.observe_latency(clock() - started)
    # The deployment is answering: that is what the breaker guards, and a half-open probe must not
    # hold every other caller off for the length of a whole generation.
    deployment.breaker.record_success()
    return RoutedStream(first, iterator, deployment, info, clock, traced)


class RoutedStream(AsyncIterator[StreamEvent]):
    """The first event, then the provider's stream. ``aclose()`` closes the provider's stream (how a
    client's cancel reaches the upstream) and frees the deployment's in-flight slot."""

    def __init__(
        self,
        first: StreamEvent,
        iterator: AsyncIterator[StreamEvent],
        deployment: Deployment,
        info: RouteInfo,
        clock: Callable[[], float],
        traced: AttemptTrace = UNTRACED_ATTEMPT,
    ) -> None:
        self.deployment = deployment
        self._first: StreamEvent | None = first
        self._iterator = iterator
        self._info = info
        self._clock = clock
        self._traced = traced
        self._finished = False

    def __aiter__(self) -> RoutedStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._first is not None:
            event, self._first = self._first, None
            self._observe(event)
            return event
        if self._finished:
            raise StopAsyncIteration
        started, load_wait_before = self._clock(), model_load_wait_var.get()
        try:
            event = await anext(self._iterator)
        except StopAsyncIteration:
            self._finish(None)
            raise
        except BaseException as exc:  # incl. cancellation: the provider's stream must not linger
            self._finish(exc)
            await close_iterator(self._iterator)
            raise
        finally:
            self._info.upstream_seconds += self._clock() - started
            model_load_wait_var.set(load_wait_before)  # a load inside the stream is upstream time already
        self._observe(event)
        return event

    async def aclose(self) -> None:
        # Closed by its consumer after the deployment answered: a success for the deployment.
        self._finish(None)
        self._first = None
        await close_iterator(self._iterator)

    def __del__(self) -> None:
        # Dropped without aclose(): free the slot. The event loop finalises the provider's generator.
        if not self._finished:
            self._finished = True
            self.deployment.stats.end()
            self._traced.end()

    def _observe(self, event: StreamEvent) -> None:
        self._traced.observe(event)
        if isinstance(event, Usage):
            self.deployment.stats.add_tokens(event.total_tokens)

    def _finish(self, exc: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._traced.end(exc)
        self.deployment.stats.end()
        if exc is None:
            self.deployment.stats.record_success()
        else:
            settle_failure(self.deployment, exc)


async def close_iterator(iterator: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:  # a provider failing to clean up must not turn a finished call into an error
        logger.warning("closing a provider stream failed", exc_info=True)
