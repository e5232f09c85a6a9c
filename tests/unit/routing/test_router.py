"""Non-streamed routing: retries, backoff, breakers in the loop, fallbacks, final errors."""

from __future__ import annotations

import asyncio

import pytest

from llmserve.config import CircuitBreakerSettings, Pricing
from llmserve.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    NoDeploymentAvailable,
    Overloaded,
    RateLimited,
    UpstreamError,
)
from tests.polling import eventually
from tests.unit.routing.fakes import (
    REQUEST,
    FakeClock,
    FakeProvider,
    RecordingSleep,
    TopOfRangeRandom,
    deployment,
    router,
    upstream_error,
)


async def test_answers_and_reports_the_route() -> None:
    clock = FakeClock()
    only = FakeProvider("only")
    r = router({"g": [deployment(only, clock)]}, clock)
    completion, info = await r.complete("g", REQUEST)
    assert completion.choices[0].text == "only"
    assert (info.group, info.deployment, info.attempts, info.fallback_used) == ("g", "only", 1, False)
    d = r.deployments("g")[0]
    assert (d.stats.requests, d.stats.successes, d.stats.in_flight, d.stats.tpm_used()) == (1, 1, 0, 5)


async def test_unknown_group_is_model_not_found() -> None:
    clock = FakeClock()
    r = router({"g": [deployment(FakeProvider("a"), clock)]}, clock)
    with pytest.raises(ModelNotFound):
        await r.complete("nope", REQUEST)


async def test_a_failed_call_is_retried_on_another_deployment() -> None:
    clock = FakeClock()
    broken = FakeProvider("broken", default=upstream_error(502))
    healthy = FakeProvider("healthy")
    r = router({"g": [deployment(broken, clock), deployment(healthy, clock)]}, clock)
    for _ in range(20):
        completion, info = await r.complete("g", REQUEST)
        assert completion.choices[0].text == "healthy"
        assert info.attempts in (1, 2)
    assert healthy.calls == 20 and broken.calls >= 1
    assert r.deployments("g")[0].stats.failures == broken.calls


@pytest.mark.parametrize("error", [InvalidRequest("bad"), RuntimeError("provider bug")], ids=["400", "bug"])
async def test_client_errors_and_bugs_are_never_retried(error: Exception) -> None:
    clock = FakeClock()
    first = FakeProvider("first", default=error)
    second = FakeProvider("second")
    r = router({"g": [deployment(first, clock, weight=1000), deployment(second, clock, weight=0.001)]}, clock)
    with pytest.raises(type(error)):
        await r.complete("g", REQUEST)
    assert (first.calls, second.calls) == (1, 0)
    assert r.deployments("g")[0].breaker.state == "closed"


async def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    dead = FakeProvider("dead", default=upstream_error(503))
    r = router(
        {"g": [deployment(dead, clock, breaker=CircuitBreakerSettings(failure_threshold=10))]},
        clock,
        sleep=sleep,
        rng=TopOfRangeRandom(),
        retries=4,
        backoff_base_seconds=0.5,
        backoff_max_seconds=3,
    )
    with pytest.raises(UpstreamError):
        await r.complete("g", REQUEST)
    assert sleep.calls == [0.5, 1.0, 2.0, 3.0]
    assert dead.calls == 5


async def test_backoff_has_full_jitter() -> None:
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    dead = FakeProvider("dead", default=upstream_error(503))
    r = router(
        {
            "g": [
                deployment(dead, clock, breaker=CircuitBreakerSettings(failure_threshold=100, min_calls=100))
            ]
        },
        clock,
        sleep=sleep,
        retries=1,
        backoff_base_seconds=1.0,
    )
    for _ in range(30):
        with pytest.raises(UpstreamError):
            await r.complete("g", REQUEST)
    assert all(0 <= s <= 1.0 for s in sleep.calls)
    assert len({round(s, 6) for s in sleep.calls}) > 20


async def test_retry_after_is_waited_out_before_retrying_the_same_deployment() -> None:
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    limited = FakeProvider("limited", script=[upstream_error(429, retry_after=5)])
    r = router({"g": [deployment(limited, clock)]}, clock, sleep=sleep, backoff_base_seconds=0.1)
    completion, info = await r.complete("g", REQUEST)
    assert completion.choices[0].text == "limited"
    assert info.attempts == 2
    assert sleep.calls == [5.0]
    assert info.upstream_seconds == pytest.approx(5.0)


async def test_a_retry_after_does_not_delay_a_retry_on_another_deployment() -> None:
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    limited = FakeProvider("limited", script=[upstream_error(429, retry_after=20)])
    other = FakeProvider("other", script=[upstream_error(503)])
    r = router(
        {"g": [deployment(limited, clock, weight=1000), deployment(other, clock, weight=0.001)]},
        clock,
        sleep=sleep,
        rng=TopOfRangeRandom(),
        backoff_base_seconds=0.1,
        max_retry_after_seconds=30,
    )
    completion, info = await r.complete("g", REQUEST)
    # limited (429, wait 20 s) → other at once (never tried: nothing to back off from) → other again
    # after backoff (it just failed) rather than wait 20 s for limited.
    assert sleep.calls == [0.2]
    assert (completion.choices[0].text, info.attempts, limited.calls) == ("other", 3, 1)
    assert r.deployments("g")[0].breaker.state == "closed"


async def test_a_huge_retry_after_falls_back_instead_of_waiting() -> None:
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    limited = FakeProvider("limited", default=upstream_error(429, retry_after=3600))
    spare = FakeProvider("spare")
    r = router(
        {"g": [deployment(limited, clock)], "backup": [deployment(spare, clock, group="backup")]},
        clock,
        sleep=sleep,
        fallbacks={"g": ["backup"]},
    )
    completion, info = await r.complete("g", REQUEST)
    assert completion.choices[0].text == "spare"
    assert (info.group, info.fallback_used, info.attempts) == ("backup", True, 2)
    assert sleep.calls == []
    assert limited.calls == 1


async def test_a_rate_limited_group_with_no_fallback_answers_429_with_retry_after() -> None:
    clock = FakeClock()
    limited = FakeProvider("limited", default=upstream_error(429, retry_after=3600))
    r = router({"g": [deployment(limited, clock)]}, clock)
    with pytest.raises(RateLimited) as caught:
        await r.complete("g", REQUEST)
    assert caught.value.retry_after == pytest.approx(3600)


async def test_a_429_group_falls_back_to_another_group() -> None:
    clock = FakeClock()
    a = FakeProvider("a", default=upstream_error(429))
    b = FakeProvider("b", default=upstream_error(429))
    spare = FakeProvider("spare")
    r = router(
        {
            "g": [deployment(a, clock), deployment(b, clock)],
            "backup": [deployment(spare, clock, group="backup")],
        },
        clock,
        fallbacks={"g": ["backup"]},
        retries=2,
    )
    completion, info = await r.complete("g", REQUEST)
    assert completion.choices[0].text == "spare"
    assert (info.group, info.fallback_used, info.attempts) == ("backup", True, 4)


async def test_every_group_rate_limited_is_a_429_with_the_soonest_retry_after() -> None:
    clock = FakeClock()
    r = router(
        {
            "g": [deployment(FakeProvider("a", default=upstream_error(429, retry_after=40)), clock)],
            "backup": [deployment(FakeProvider("b", default=upstream_error(429, retry_after=50)), clock)],
        },
        clock,
        fallbacks={"g": ["backup"]},
    )
    with pytest.raises(RateLimited) as caught:
        await r.complete("g", REQUEST)
    assert caught.value.retry_after == pytest.approx(40)


async def test_local_caps_fall_back_then_answer_429_when_nothing_is_left() -> None:
    clock = FakeClock()
    capped = FakeProvider("capped")
    r = router({"g": [deployment(capped, clock, rpm=2)]}, clock)
    await r.complete("g", REQUEST)
    clock.advance(15)
    await r.complete("g", REQUEST)
    with pytest.raises(RateLimited) as caught:
        await r.complete("g", REQUEST)
    assert caught.value.retry_after == pytest.approx(45)
    assert capped.calls == 2


async def test_context_length_goes_straight_to_the_context_window_fallback() -> None:
    clock = FakeClock()
    small = FakeProvider("small", default=ContextLengthExceeded("too long"))
    other_small = FakeProvider("other-small")
    outage_fallback = FakeProvider("outage-fallback")
    large = FakeProvider("large")
    r = router(
        {
            "g": [deployment(small, clock, weight=1000), deployment(other_small, clock, weight=0.001)],
            "outage": [deployment(outage_fallback, clock, group="outage")],
            "long": [deployment(large, clock, group="long")],
        },
        clock,
        fallbacks={"g": ["outage"]},
        context_window_fallbacks={"g": ["long"]},
    )
    completion, info = await r.complete("g", REQUEST)
    assert completion.choices[0].text == "large"
    assert (info.group, info.fallback_used, info.attempts) == ("long", True, 2)
    assert (other_small.calls, outage_fallback.calls) == (0, 0)


async def test_context_length_without_a_context_fallback_is_raised() -> None:
    clock = FakeClock()
    small = FakeProvider("small", default=ContextLengthExceeded("too long"))
    spare = FakeProvider("spare")
    r = router(
        {"g": [deployment(small, clock)], "backup": [deployment(spare, clock, group="backup")]},
        clock,
        fallbacks={"g": ["backup"]},
    )
    with pytest.raises(ContextLengthExceeded):
        await r.complete("g", REQUEST)
    assert spare.calls == 0


async def test_one_dead_deployment_costs_no_request() -> None:
    clock = FakeClock()
    dead = FakeProvider("dead", default=UpstreamError("refused", kind="connect", retryable=True))
    alive = FakeProvider("alive")
    breaker = CircuitBreakerSettings(failure_threshold=3, cooldown_seconds=5, startup_grace_seconds=0)
    r = router(
        {"g": [deployment(dead, clock, breaker=breaker), deployment(alive, clock, breaker=breaker)]},
        clock,
        retries=1,
    )
    for _ in range(200):
        completion, _ = await r.complete("g", REQUEST)
        assert completion.choices[0].text == "alive"
        clock.advance(0.25)
    assert alive.calls == 200
    # The breaker keeps the dead one out: only a probe per cooldown gets through.
    assert dead.calls <= 3 + 200 * 0.25 / 5 + 1
    assert r.deployments("g")[0].stats.in_flight == 0


async def test_an_open_breaker_keeps_calls_away_and_the_probe_recovers_it() -> None:
    clock = FakeClock()
    flaky = FakeProvider("flaky", script=[upstream_error(500), upstream_error(500)])
    settings = CircuitBreakerSettings(failure_threshold=2, cooldown_seconds=10)
    r = router({"g": [deployment(flaky, clock, breaker=settings)]}, clock, retries=0)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await r.complete("g", REQUEST)
    with pytest.raises(NoDeploymentAvailable):
        await r.complete("g", REQUEST)
    assert flaky.calls == 2
    clock.advance(10)
    completion, _ = await r.complete("g", REQUEST)
    assert completion.choices[0].text == "flaky"
    assert r.deployments("g")[0].breaker.state == "closed"


async def test_the_last_upstream_error_beats_no_deployment_available() -> None:
    clock = FakeClock()
    broken = FakeProvider("broken", default=upstream_error(502))
    r = router(
        {"g": [deployment(broken, clock, breaker=CircuitBreakerSettings(failure_threshold=1))]},
        clock,
        retries=3,
    )
    with pytest.raises(UpstreamError) as caught:
        await r.complete("g", REQUEST)
    assert caught.value.upstream_status == 502
    assert broken.calls == 1  # its breaker opened: no pointless retries


async def test_rejected_credentials_move_on_without_retrying_that_deployment() -> None:
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    bad_key = FakeProvider("bad-key", default=upstream_error(401))
    good_key = FakeProvider("good-key")
    r = router(
        {"g": [deployment(bad_key, clock, weight=1000), deployment(good_key, clock, weight=0.001)]},
        clock,
        sleep=sleep,
        retries=3,
    )
    _, info = await r.complete("g", REQUEST)
    assert (info.deployment, bad_key.calls) == ("good-key", 1)


async def test_overloaded_local_engine_is_retried_on_another_deployment() -> None:
    clock = FakeClock()
    full = FakeProvider("full", default=Overloaded("queue full"))
    free = FakeProvider("free")
    r = router({"g": [deployment(full, clock, weight=1000), deployment(free, clock, weight=0.001)]}, clock)
    _, info = await r.complete("g", REQUEST)
    assert (info.deployment, info.attempts) == ("free", 2)
    assert r.deployments("g")[0].breaker.state == "closed"  # load is not ill health


async def test_fallback_group_gets_its_own_retries() -> None:
    clock = FakeClock()
    down = FakeProvider("down", default=upstream_error(503))
    flaky = FakeProvider("flaky", script=[upstream_error(503), upstream_error(503)])
    breaker = CircuitBreakerSettings(failure_threshold=10)
    r = router(
        {
            "g": [deployment(down, clock, breaker=breaker)],
            "backup": [deployment(flaky, clock, group="backup", breaker=breaker)],
        },
        clock,
        fallbacks={"g": ["backup"]},
        retries=2,
    )
    completion, info = await r.complete("g", REQUEST)
    assert completion.choices[0].text == "flaky"
    assert (down.calls, flaky.calls, info.attempts) == (3, 3, 6)


async def test_snapshot_lists_every_deployment() -> None:
    clock = FakeClock()
    r = router(
        {"g": [deployment(FakeProvider("a"), clock)], "h": [deployment(FakeProvider("b"), clock, group="h")]},
        clock,
    )
    await r.complete("g", REQUEST)
    rows = {row["id"]: row for row in r.snapshot()}
    assert set(rows) == {"a", "b"}
    assert rows["a"]["successes"] == 1 and rows["a"]["group"] == "g" and rows["b"]["requests"] == 0


async def test_the_configured_strategy_orders_the_tries() -> None:
    clock = FakeClock()
    dear = FakeProvider("dear")
    local = FakeProvider("local")
    r = router(
        {"g": [deployment(dear, clock, pricing=Pricing(input_per_1k=0.01)), deployment(local, clock)]},
        clock,
        strategy="lowest-cost",
    )
    for _ in range(10):
        assert (await r.complete("g", REQUEST))[1].deployment == "local"
    assert dear.calls == 0


async def test_half_open_lets_one_request_probe_while_others_are_refused() -> None:
    clock = FakeClock()
    recovering = FakeProvider("recovering", script=[upstream_error(500)], delay=0.02)
    settings = CircuitBreakerSettings(failure_threshold=1, cooldown_seconds=10)
    r = router({"g": [deployment(recovering, clock, breaker=settings)]}, clock, retries=0)
    with pytest.raises(UpstreamError):
        await r.complete("g", REQUEST)
    clock.advance(10)
    probe = asyncio.create_task(r.complete("g", REQUEST))
    await eventually(lambda: recovering.calls == 2)  # the probe is in flight
    with pytest.raises(NoDeploymentAvailable):
        await r.complete("g", REQUEST)
    completion, _ = await probe
    assert completion.choices[0].text == "recovering"
    assert recovering.calls == 2
    assert (await r.complete("g", REQUEST))[0].choices[0].text == "recovering"
