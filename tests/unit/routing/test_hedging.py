"""Hedged requests, with real (short) sleeps: the first answer wins, the slow copy is cancelled."""

from __future__ import annotations

import random

import pytest

from llmserve.config import RouterSettings
from llmserve.errors import InvalidRequest
from llmserve.routing.deployment import Deployment
from llmserve.routing.router import Router
from llmserve.types import Delta
from tests.unit.routing.fakes import REQUEST, FakeClock, FakeProvider, deployment, upstream_error


def hedging_router(*providers: FakeProvider, hedge_after_ms: float = 10) -> tuple[Router, list[Deployment]]:
    clock = FakeClock()
    # The first provider is (all but surely) the primary: weights 1000 : 0.001.
    ds = [deployment(p, clock, weight=1000 if i == 0 else 0.001) for i, p in enumerate(providers)]
    settings = RouterSettings(hedge_after_ms=hedge_after_ms, backoff_base_seconds=0)
    return Router({"g": ds}, settings, rng=random.Random(11)), ds


async def test_a_slow_call_is_hedged_and_the_fast_copy_wins() -> None:
    slow, fast = FakeProvider("slow", delay=0.05), FakeProvider("fast", delay=0.0)
    r, ds = hedging_router(slow, fast)
    completion, info = await r.complete("g", REQUEST)
    assert completion.choices[0].text == "fast"
    assert (info.deployment, info.attempts) == ("fast", 2)
    assert slow.cancelled == 1
    assert [d.stats.in_flight for d in ds] == [0, 0]
    assert ds[0].stats.failures == 0 and ds[0].breaker.state == "closed"  # losing a race is no failure


async def test_a_fast_answer_is_not_hedged() -> None:
    quick, spare = FakeProvider("quick", delay=0.001), FakeProvider("spare")
    r, _ = hedging_router(quick, spare, hedge_after_ms=40)
    completion, info = await r.complete("g", REQUEST)
    assert (completion.choices[0].text, info.attempts, spare.calls) == ("quick", 1, 0)


async def test_when_one_copy_fails_the_other_is_awaited() -> None:
    failing = FakeProvider("failing", delay=0.02, default=upstream_error(503))
    slower = FakeProvider("slower", delay=0.04)
    r, ds = hedging_router(failing, slower)
    completion, info = await r.complete("g", REQUEST)
    assert completion.choices[0].text == "slower"
    assert info.attempts == 2
    assert ds[0].stats.failures == 1


async def test_a_client_error_from_either_copy_is_raised_at_once() -> None:
    bad = FakeProvider("bad", delay=0.02, default=InvalidRequest("no tools here"))
    slow = FakeProvider("slow", delay=0.05)
    r, ds = hedging_router(bad, slow)
    with pytest.raises(InvalidRequest):
        await r.complete("g", REQUEST)
    assert slow.cancelled == 1
    assert [d.stats.in_flight for d in ds] == [0, 0]


async def test_a_lone_deployment_is_not_hedged() -> None:
    alone = FakeProvider("alone", delay=0.03)
    r, _ = hedging_router(alone)
    _, info = await r.complete("g", REQUEST)
    assert (info.attempts, alone.calls) == (1, 1)


async def test_a_slow_stream_is_hedged_and_the_loser_stream_closed() -> None:
    slow, fast = FakeProvider("slow", delay=0.05), FakeProvider("fast")
    r, ds = hedging_router(slow, fast)
    stream, info = await r.stream("g", REQUEST)
    events = [event async for event in stream]
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "fast!"
    assert (info.deployment, info.attempts) == ("fast", 2)
    assert slow.streams_closed == 1
    assert [d.stats.in_flight for d in ds] == [0, 0]
