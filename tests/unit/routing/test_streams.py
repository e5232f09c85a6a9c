"""Streamed routing: failover only before the first event, bookkeeping when the stream ends or closes."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator

import pytest

from llmserve.config import CircuitBreakerSettings, RouterSettings
from llmserve.errors import RateLimited, UpstreamError
from llmserve.routing.calls import RoutedStream
from llmserve.routing.router import Router
from llmserve.types import Delta, GenerationInput, StreamEvent, Usage
from tests.polling import eventually
from tests.unit.routing.fakes import (
    REQUEST,
    FailAfter,
    FakeClock,
    FakeProvider,
    deployment,
    router,
    upstream_error,
)


async def drain(stream: RoutedStream) -> list[StreamEvent]:
    return [event async for event in stream]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, Delta))


async def test_stream_replays_the_first_event_then_the_rest() -> None:
    clock = FakeClock()
    only = FakeProvider("only")
    r = router({"g": [deployment(only, clock)]}, clock)
    stream, info = await r.stream("g", REQUEST)
    d = r.deployments("g")[0]
    assert d.stats.in_flight == 1  # held until the stream ends
    events = await drain(stream)
    assert text_of(events) == "only!"
    assert events[-1] == Usage(3, 2)
    assert (info.deployment, info.attempts) == ("only", 1)
    assert (d.stats.in_flight, d.stats.successes, d.stats.failures, d.stats.tpm_used()) == (0, 1, 0, 5)
    assert only.streams_finished == 1


async def test_failure_before_the_first_event_fails_over() -> None:
    clock = FakeClock()
    broken = FakeProvider("broken", default=upstream_error(502))
    healthy = FakeProvider("healthy")
    r = router(
        {"g": [deployment(broken, clock, weight=1000), deployment(healthy, clock, weight=0.001)]}, clock
    )
    stream, info = await r.stream("g", REQUEST)
    assert text_of(await drain(stream)) == "healthy!"
    assert (info.deployment, info.attempts) == ("healthy", 2)
    assert r.deployments("g")[0].stats.failures == 1
    assert r.deployments("g")[0].stats.in_flight == 0


async def test_a_stream_that_ends_without_events_is_a_failure_that_fails_over() -> None:
    clock = FakeClock()

    class EmptyStream(FakeProvider):
        async def stream(self, request: GenerationInput) -> AsyncIterator[StreamEvent]:
            self.calls += 1
            return
            yield

    empty, healthy = EmptyStream("empty"), FakeProvider("healthy")
    r = router(
        {"g": [deployment(empty, clock, weight=1000), deployment(healthy, clock, weight=0.001)]}, clock
    )
    stream, info = await r.stream("g", REQUEST)
    assert text_of(await drain(stream)) == "healthy!"
    assert info.attempts == 2
    assert "before its first event" in (r.deployments("g")[0].stats.last_error or "")


async def test_error_after_the_first_event_propagates_without_failover() -> None:
    clock = FakeClock()
    cut = FakeProvider(
        "cut", default=FailAfter(1, UpstreamError("cut short", kind="protocol", retryable=True))
    )
    other = FakeProvider("other")
    r = router({"g": [deployment(cut, clock, weight=1000), deployment(other, clock, weight=0.001)]}, clock)
    stream, info = await r.stream("g", REQUEST)
    received: list[StreamEvent] = []
    with pytest.raises(UpstreamError, match="cut short"):
        async for event in stream:
            received.append(event)
    assert text_of(received) == "cut"
    assert (info.deployment, info.attempts, other.calls) == ("cut", 1, 0)
    d = r.deployments("g")[0]
    assert (d.stats.in_flight, d.stats.failures, d.stats.successes) == (0, 1, 0)
    assert d.stats.last_error == "cut short"
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_aclose_closes_the_provider_stream_and_frees_the_slot() -> None:
    clock = FakeClock()
    talker = FakeProvider("talker")
    r = router({"g": [deployment(talker, clock)]}, clock)
    stream, _ = await r.stream("g", REQUEST)
    assert isinstance(await stream.__anext__(), Delta)
    assert isinstance(await stream.__anext__(), Delta)
    await stream.aclose()
    assert talker.streams_closed == 1
    d = r.deployments("g")[0]
    assert (d.stats.in_flight, d.stats.failures) == (0, 0)
    await stream.aclose()  # twice is harmless
    assert d.stats.in_flight == 0


async def test_a_cancelled_consumer_closes_the_provider_stream() -> None:
    clock = FakeClock()
    slow = FakeProvider("slow", gap=10)
    r = router({"g": [deployment(slow, clock)]}, clock)
    stream, _ = await r.stream("g", REQUEST)
    received: list[StreamEvent] = []

    async def consume() -> None:
        async for event in stream:
            received.append(event)

    consumer = asyncio.create_task(consume())
    await eventually(lambda: len(received) == 1)  # first event replayed, now waiting on the provider's second
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    d = r.deployments("g")[0]
    assert slow.streams_closed == 1
    assert (d.stats.in_flight, d.stats.failures) == (0, 0)
    assert d.breaker.state == "closed"


async def test_a_group_with_one_dead_deployment_streams_every_request() -> None:
    clock = FakeClock()
    dead = FakeProvider("dead", default=UpstreamError("refused", kind="connect", retryable=True))
    alive = FakeProvider("alive")
    breaker = CircuitBreakerSettings(failure_threshold=3, cooldown_seconds=5)
    r = router(
        {"g": [deployment(dead, clock, breaker=breaker), deployment(alive, clock, breaker=breaker)]},
        clock,
        retries=1,
    )
    for _ in range(200):
        stream, _ = await r.stream("g", REQUEST)
        assert text_of(await drain(stream)) == "alive!"
        clock.advance(0.25)
    assert alive.calls == 200
    assert all(d.stats.in_flight == 0 for d in r.deployments("g"))


async def test_a_rate_limited_stream_falls_back_to_another_group() -> None:
    clock = FakeClock()
    limited = FakeProvider("limited", default=upstream_error(429, retry_after=1000))
    spare = FakeProvider("spare")
    r = router(
        {"g": [deployment(limited, clock)], "backup": [deployment(spare, clock, group="backup")]},
        clock,
        fallbacks={"g": ["backup"]},
    )
    stream, info = await r.stream("g", REQUEST)
    assert text_of(await drain(stream)) == "spare!"
    assert (info.group, info.fallback_used) == ("backup", True)


async def test_a_rate_limited_stream_without_fallback_is_a_429() -> None:
    clock = FakeClock()
    limited = FakeProvider("limited", default=upstream_error(429, retry_after=1000))
    r = router({"g": [deployment(limited, clock)]}, clock)
    with pytest.raises(RateLimited):
        await r.stream("g", REQUEST)
    assert limited.streams_closed == 0 and r.deployments("g")[0].stats.in_flight == 0


async def test_stream_time_counts_as_upstream_time() -> None:
    clock = FakeClock()
    paced = FakeProvider("paced", delay=0.01, gap=0.01)
    r = Router({"g": [deployment(paced, clock)]}, RouterSettings(), rng=random.Random(0))
    stream, info = await r.stream("g", REQUEST)
    first_token_wait = info.upstream_seconds
    assert first_token_wait >= 0.009
    await drain(stream)
    assert info.upstream_seconds >= first_token_wait + 0.018


async def test_a_stream_dropped_without_aclose_still_frees_its_slot() -> None:
    clock = FakeClock()
    talker = FakeProvider("talker")
    r = router({"g": [deployment(talker, clock)]}, clock)
    stream, _ = await r.stream("g", REQUEST)
    await stream.__anext__()
    await stream.__anext__()
    del stream
    gc.collect()
    # The event loop finalises the provider's generator in a task of its own.
    await eventually(lambda: talker.streams_closed == 1 and r.deployments("g")[0].stats.in_flight == 0)
    assert r.deployments("g")[0].stats.in_flight == 0
    assert talker.streams_closed == 1
