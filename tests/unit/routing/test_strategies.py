from __future__ import annotations

import random
from collections import Counter

import pytest

from llmserve.config import CircuitBreakerSettings, Pricing
from llmserve.errors import NoDeploymentAvailable, RateLimited
from llmserve.routing.deployment import Deployment, redact_url
from llmserve.routing.strategies import (
    eligible,
    least_busy,
    lowest_cost,
    lowest_latency,
    usage_based,
    weighted,
)
from tests.unit.routing.fakes import FakeClock, FakeProvider, deployment


def ids(order: list[Deployment]) -> list[str]:
    return [d.id for d in order]


def test_weighted_order_follows_the_weights() -> None:
    clock = FakeClock()
    heavy = deployment(FakeProvider("heavy"), clock, weight=3)
    light = deployment(FakeProvider("light"), clock, weight=1)
    rng = random.Random(1)
    firsts = Counter(weighted([heavy, light], rng)[0].id for _ in range(4000))
    assert 0.70 < firsts["heavy"] / 4000 < 0.80  # 3 / (3 + 1)
    assert sorted(ids(weighted([heavy, light], rng))) == ["heavy", "light"]


def test_least_busy_orders_by_in_flight() -> None:
    clock = FakeClock()
    ds = [deployment(FakeProvider(name), clock) for name in ("a", "b", "c")]
    for d, busy in zip(ds, (2, 0, 1), strict=True):
        d.stats.in_flight = busy
    assert ids(least_busy(ds, random.Random(0))) == ["b", "c", "a"]


def test_least_busy_breaks_ties_at_random() -> None:
    clock = FakeClock()
    ds = [deployment(FakeProvider(name), clock) for name in ("a", "b")]
    rng = random.Random(0)
    assert {least_busy(ds, rng)[0].id for _ in range(50)} == {"a", "b"}


def test_lowest_latency_tries_unmeasured_first_then_prefers_the_fast() -> None:
    clock = FakeClock()
    fast, slow, new = (deployment(FakeProvider(name), clock) for name in ("fast", "slow", "new"))
    fast.stats.observe_latency(0.05)
    slow.stats.observe_latency(2.0)
    rng = random.Random(3)
    for _ in range(20):
        assert ids(lowest_latency([slow, fast, new], rng)) == ["new", "fast", "slow"]


def test_lowest_latency_spreads_over_more_than_the_single_fastest() -> None:
    clock = FakeClock()
    ds = [deployment(FakeProvider(f"d{i}"), clock) for i in range(4)]
    for i, d in enumerate(ds):
        d.stats.observe_latency(0.1 * (i + 1))
    rng = random.Random(5)
    firsts = Counter(lowest_latency(ds, rng)[0].id for _ in range(600))
    assert firsts["d3"] == 0  # the slowest never wins a pair
    assert firsts["d0"] > firsts["d1"] > firsts["d2"] > 0


def test_lowest_cost_puts_unpriced_local_first() -> None:
    clock = FakeClock()
    dear = deployment(FakeProvider("dear"), clock, pricing=Pricing(input_per_1k=0.01, output_per_1k=0.03))
    cheap = deployment(FakeProvider("cheap"), clock, pricing=Pricing(input_per_1k=0.001, output_per_1k=0.002))
    local = deployment(FakeProvider("local"), clock)
    assert ids(lowest_cost([dear, cheap, local], random.Random(0))) == ["local", "cheap", "dear"]


def test_usage_based_prefers_the_most_headroom() -> None:
    clock = FakeClock()
    busy = deployment(FakeProvider("busy"), clock, rpm=10)
    idle = deployment(FakeProvider("idle"), clock, rpm=10)
    tokens = deployment(FakeProvider("tokens"), clock, tpm=1000)
    for _ in range(6):
        busy.stats.begin()
        busy.stats.end()
    idle.stats.begin()
    idle.stats.end()
    tokens.stats.add_tokens(500)
    assert ids(usage_based([busy, tokens, idle], random.Random(0))) == ["idle", "tokens", "busy"]


def test_caps_exclude_a_deployment_and_all_capped_is_rate_limited_until_the_window_frees() -> None:
    clock = FakeClock()
    capped = deployment(FakeProvider("capped"), clock, rpm=2)
    free = deployment(FakeProvider("free"), clock)
    capped.stats.begin()
    clock.advance(10)
    capped.stats.begin()
    assert ids(eligible("g", [capped, free])) == ["free"]
    with pytest.raises(RateLimited) as caught:
        eligible("g", [capped])
    assert caught.value.retry_after == pytest.approx(50)  # the first request leaves the window at 60s
    clock.advance(50)
    assert ids(eligible("g", [capped])) == ["capped"]


def test_tpm_and_concurrency_caps() -> None:
    clock = FakeClock()
    tokens = deployment(FakeProvider("tokens"), clock, tpm=100)
    tokens.stats.add_tokens(60)
    clock.advance(20)
    tokens.stats.add_tokens(60)
    busy = deployment(FakeProvider("busy"), clock, max_concurrency=1)
    busy.stats.begin()
    with pytest.raises(RateLimited) as caught:
        eligible("g", [tokens, busy])
    assert caught.value.retry_after == pytest.approx(1.0)  # a concurrency slot may free any moment
    with pytest.raises(RateLimited) as caught:
        eligible("g", [tokens])
    assert caught.value.retry_after == pytest.approx(40)
    busy.stats.end()
    assert ids(eligible("g", [tokens, busy])) == ["busy"]


def test_open_breakers_exclude_and_all_open_is_no_deployment_available() -> None:
    clock = FakeClock()
    settings = CircuitBreakerSettings(failure_threshold=1)
    broken = deployment(FakeProvider("broken"), clock, breaker=settings)
    ok = deployment(FakeProvider("ok"), clock)
    broken.breaker.record_failure()
    assert ids(eligible("g", [broken, ok])) == ["ok"]
    with pytest.raises(NoDeploymentAvailable):
        eligible("g", [broken])


def test_all_breakers_open_say_retry_after_when_the_first_lets_a_probe_through() -> None:
    # It said 1 s while the breakers stayed open 10 s more: clients retried ten times for nothing.
    clock = FakeClock()
    soon = deployment(
        FakeProvider("soon"),
        clock,
        breaker=CircuitBreakerSettings(failure_threshold=1, cooldown_seconds=12, startup_grace_seconds=0),
    )
    late = deployment(
        FakeProvider("late"),
        clock,
        breaker=CircuitBreakerSettings(failure_threshold=1, cooldown_seconds=30, startup_grace_seconds=0),
    )
    soon.breaker.record_failure()
    late.breaker.record_failure()
    clock.advance(2)
    with pytest.raises(NoDeploymentAvailable) as caught:
        eligible("g", [soon, late])
    assert caught.value.retry_after == pytest.approx(10)
    clock.advance(9.5)
    with pytest.raises(NoDeploymentAvailable) as caught:
        eligible("g", [soon, late])
    assert caught.value.retry_after == 1.0  # never less than a second


def test_a_group_at_its_deployment_caps_sends_rate_limit_headers() -> None:
    clock = FakeClock()
    first = deployment(FakeProvider("first"), clock, rpm=1)
    second = deployment(FakeProvider("second"), clock, rpm=2)
    first.stats.begin()
    second.stats.begin()
    second.stats.begin()
    clock.advance(15)
    with pytest.raises(RateLimited) as caught:
        eligible("g", [first, second])
    assert caught.value.headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-limit": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset-requests": "45s",
        "x-ratelimit-reset": "45",
    }


def test_snapshot_shows_health_without_secrets() -> None:
    clock = FakeClock()
    d = deployment(
        FakeProvider("remote"),
        clock,
        provider="openai",
        api_base="https://user:secret@api.example.com:8443/v1?key=sk-123",
        api_key="sk-top-secret",
        rpm=100,
        breaker=CircuitBreakerSettings(failure_threshold=1, cooldown_seconds=20, startup_grace_seconds=0),
    )
    d.stats.begin()
    d.stats.end()
    d.stats.record_failure(RuntimeError("upstream answered 502"))
    d.breaker.record_failure()
    clock.advance(5)
    row = d.snapshot()
    assert row["api_base"] == "https://api.example.com:8443/v1"
    assert "secret" not in repr(row) and "sk-" not in repr(row)
    assert row["breaker"] == "open" and row["half_open_in_s"] == 15
    assert row["failures"] == 1 and row["error_rate"] == 1.0 and row["rpm_used"] == 1
    assert row["last_error"] == "upstream answered 502" and row["last_error_age_s"] == 5
    assert redact_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
