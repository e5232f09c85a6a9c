"""Rate limits on both backends: exact admission, all-or-nothing across subjects, TPM, parallel, headers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from llmserve.cache.stores import connect_redis, delete_matching, glob_escape
from llmserve.config import LimitRule, LimitSettings, Settings
from llmserve.errors import RateLimited
from llmserve.limits.ratelimit import (
    InProcessLimiter,
    Lease,
    LimitSubject,
    RateLimiter,
    RedisLimiter,
    build_limiter,
)
from tests.unit.limits.conftest import FakeClock

MakeLimiter = Callable[[], RateLimiter]


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[MakeLimiter]:
    """Limiters of one backend; Redis ones are separate clients, i.e. separate replicas."""
    made: list[RateLimiter] = []
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")  # sync: an async fixture cannot be fetched here
        prefix = f"llmserve-test-{uuid.uuid4().hex[:12]}"

        def make() -> RateLimiter:
            made.append(RedisLimiter(url, prefix))
            return made[-1]

    else:

        def make() -> RateLimiter:
            # One process has one limiter: a second "replica" here is the same object.
            if not made:
                made.append(InProcessLimiter(clock=clock))
            return made[0]

    yield make
    for limiter in made:
        await limiter.close()
    if request.param == "redis":
        client = connect_redis(url)
        try:
            await delete_matching(client, f"{glob_escape(prefix)}*")
        finally:
            await client.aclose()


def key(rule: LimitRule, name: str = "key:k1") -> LimitSubject:
    return LimitSubject(name, rule)


async def try_acquire(limiter: RateLimiter, subjects: list[LimitSubject], tokens: int = 1) -> Lease | None:
    try:
        return await limiter.acquire(subjects, tokens)
    except RateLimited:
        return None


async def test_exactly_the_rpm_limit_of_50_concurrent_requests_is_admitted(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    subjects = [key(LimitRule(rpm=10))]

    results = await asyncio.gather(*(try_acquire(limiter, subjects) for _ in range(50)))

    assert sum(r is not None for r in results) == 10


async def test_three_replicas_admit_exactly_20_of_90_concurrent_requests(
    redis_url: str, redis_prefix: str
) -> None:
    replicas = [RedisLimiter(redis_url, redis_prefix) for _ in range(3)]
    subjects = [key(LimitRule(rpm=20))]
    try:
        results = await asyncio.gather(*(try_acquire(replicas[i % 3], subjects) for i in range(90)))
    finally:
        for replica in replicas:
            await replica.close()

    assert sum(r is not None for r in results) == 20


async def test_a_burst_beyond_the_connection_pool_waits_for_connections(
    redis_url: str, redis_prefix: str
) -> None:
    limiter = RedisLimiter(redis_url, redis_prefix)  # 64 connections; redis-py's default pool fails the 101st
    try:
        results = await asyncio.gather(*(try_acquire(limiter, [key(LimitRule(rpm=100))]) for _ in range(500)))
    finally:
        await limiter.close()

    assert sum(r is not None for r in results) == 100


async def test_a_refusal_carries_retry_after_and_the_headers(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    subjects = [key(LimitRule(rpm=2, tpm=1000))]
    await limiter.acquire(subjects, 100)
    await limiter.acquire(subjects, 100)

    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(subjects, 100)

    error = refused.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded"
    assert error.retry_after is not None and 59 < error.retry_after <= 60
    assert error.headers is not None
    assert error.headers["x-ratelimit-limit-requests"] == "2"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-limit-tokens"] == "1000"
    assert error.headers["x-ratelimit-remaining-tokens"] == "800"  # nothing taken by the refusal
    assert error.headers["x-ratelimit-limit"] == "2"
    assert error.headers["x-ratelimit-remaining"] == "0"
    assert error.headers["x-ratelimit-reset"] == "60"


async def test_an_admitted_request_gets_the_headers_of_the_tightest_subject(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter()
    subjects = [
        key(LimitRule(rpm=100, tpm=500)),
        LimitSubject("model:chat", LimitRule(rpm=10, tpm=10_000)),
    ]

    lease = await limiter.acquire(subjects, 200)

    assert lease.headers["x-ratelimit-limit-requests"] == "10"  # the model: 9 left beats the key's 99
    assert lease.headers["x-ratelimit-remaining-requests"] == "9"
    assert lease.headers["x-ratelimit-limit-tokens"] == "500"  # the key: 300 left beats the model's 9800
    assert lease.headers["x-ratelimit-remaining-tokens"] == "300"
    assert lease.headers["x-ratelimit-reset-requests"] in {"1m0s", "59.999s", "59.998s"}
    assert lease.headers["x-ratelimit-reset-tokens"] in {"1m0s", "59.999s", "59.998s"}
    assert lease.headers["x-ratelimit-limit"] == "10"
    assert lease.headers["x-ratelimit-remaining"] == "9"
    assert lease.headers["x-ratelimit-reset"] == "60"


async def test_a_subject_without_limits_adds_no_headers(make_limiter: MakeLimiter) -> None:
    lease = await make_limiter().acquire([key(LimitRule())], 10)

    assert lease.headers == {}
    await lease.settle(5)
    await lease.release()


async def test_nothing_is_taken_from_the_key_when_the_model_is_full(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    the_key = key(LimitRule(rpm=2, tpm=100, max_parallel=1))
    model = LimitSubject("model:chat", LimitRule(rpm=1))
    other_model = LimitSubject("model:other", LimitRule())
    first = await limiter.acquire([the_key, model], 10)
    await first.release()

    for _ in range(3):
        with pytest.raises(RateLimited, match="model:chat allows 1 requests per minute"):
            await limiter.acquire([the_key, model], 10)

    # The key still has one request, 90 tokens and its parallel slot: the refusals took nothing.
    lease = await limiter.acquire([the_key, other_model], 90)
    assert lease.headers["x-ratelimit-remaining-requests"] == "0"
    assert lease.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_settling_fewer_tokens_gives_the_difference_back(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    subjects = [key(LimitRule(tpm=1000))]
    first = await limiter.acquire(subjects, 600)
    with pytest.raises(RateLimited, match="1000 tokens per minute"):
        await limiter.acquire(subjects, 600)

    await first.settle(100)

    second = await limiter.acquire(subjects, 600)
    assert second.headers["x-ratelimit-remaining-tokens"] == "300"


async def test_settling_more_tokens_than_reserved_counts_them_all(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    subjects = [key(LimitRule(tpm=1000))]
    lease = await limiter.acquire(subjects, 100)
    await lease.settle(950)

    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(subjects, 100)

    assert refused.value.headers is not None
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "50"


async def test_a_request_larger_than_the_tpm_limit_is_refused_without_retry_after(
    make_limiter: MakeLimiter,
) -> None:
    with pytest.raises(RateLimited, match="Request too large") as refused:
        await make_limiter().acquire([key(LimitRule(tpm=1000))], 1001)

    assert refused.value.retry_after is None


async def test_parallel_slots_are_freed_by_release_and_release_is_idempotent(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter()
    subjects = [key(LimitRule(max_parallel=2))]
    first = await limiter.acquire(subjects, 1)
    await limiter.acquire(subjects, 1)
    with pytest.raises(RateLimited, match="2 requests in parallel") as refused:
        await limiter.acquire(subjects, 1)
    assert refused.value.retry_after == 1.0

    await first.release()
    await first.release()  # a second release must not free a second slot

    await limiter.acquire(subjects, 1)
    with pytest.raises(RateLimited):
        await limiter.acquire(subjects, 1)


async def test_a_released_slot_survives_a_later_settle(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    subjects = [key(LimitRule(tpm=100, max_parallel=1))]
    lease = await limiter.acquire(subjects, 50)

    await lease.release()
    await lease.settle(10)
    await lease.settle(90)  # only the first settle counts

    again = await limiter.acquire(subjects, 50)
    assert again.headers["x-ratelimit-remaining-tokens"] == "40"


async def test_subjects_must_be_distinct(make_limiter: MakeLimiter) -> None:
    with pytest.raises(ValueError, match="distinct"):
        await make_limiter().acquire([key(LimitRule(rpm=1)), key(LimitRule(rpm=2))], 1)


def test_build_limiter_uses_redis_when_a_url_is_set() -> None:
    assert isinstance(build_limiter(Settings()), InProcessLimiter)
    limits = LimitSettings(redis_url="redis://127.0.0.1:6379/0")
    assert isinstance(build_limiter(Settings(limits=limits)), RedisLimiter)
    assert isinstance(build_limiter(Settings(redis_url="redis://127.0.0.1:6379/0")), RedisLimiter)


async def test_finish_settles_and_releases_at_once(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    subjects = [key(LimitRule(tpm=100, max_parallel=1))]
    lease = await limiter.acquire(subjects, 80)

    await lease.finish(30)
    await lease.finish(5)  # finished: nothing changes

    assert lease.released
    again = await limiter.acquire(subjects, 70)  # the slot is free and 30 + 70 tokens fit
    await again.finish(None)  # the call failed: the reservation of 70 stays, the slot is freed
    third = await limiter.acquire(subjects, 0)
    assert third.headers["x-ratelimit-remaining-tokens"] == "0"
