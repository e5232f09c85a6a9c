"""The sliding window over time: in process on a fake clock, in Redis on a short real window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llmserve.config import LimitRule
from llmserve.errors import Overloaded, RateLimited
from llmserve.limits.ratelimit import InProcessLimiter, LimitSubject, RedisLimiter
from llmserve.retry_timing import format_duration
from tests.unit.limits.conftest import FakeClock

KEY = "key:k1"


def rule_subjects(**limits: int) -> list[LimitSubject]:
    return [LimitSubject(KEY, LimitRule(**limits))]


async def refused(
    limiter: InProcessLimiter | RedisLimiter, subjects: list[LimitSubject], tokens: int = 1
) -> float:
    """The refusal's retry_after."""
    with pytest.raises(RateLimited) as error:
        await limiter.acquire(subjects, tokens)
    assert error.value.retry_after is not None
    return error.value.retry_after


async def test_the_window_slides_request_by_request(clock: FakeClock) -> None:
    limiter = InProcessLimiter(clock=clock)
    subjects = rule_subjects(rpm=4)
    for _ in range(2):
        await limiter.acquire(subjects, 1)  # two at t=0
    clock.advance(30)
    for _ in range(2):
        await limiter.acquire(subjects, 1)  # two at t=30

    clock.advance(29.999)
    assert await refused(limiter, subjects) == pytest.approx(0.001)
    clock.advance(0.001)  # t=60: the two from t=0 have left, the two from t=30 still count

    for _ in range(2):
        await limiter.acquire(subjects, 1)
    assert await refused(limiter, subjects) == pytest.approx(30)


async def test_retry_after_is_when_enough_requests_leave(clock: FakeClock) -> None:
    limiter = InProcessLimiter(clock=clock)
    subjects = rule_subjects(rpm=3)
    for offset in (0, 10, 10):
        clock.advance(offset)
        await limiter.acquire(subjects, 1)

    assert await refused(limiter, subjects) == pytest.approx(40)  # the t=0 request leaves at t=60


async def test_tokens_free_as_their_reservations_leave_the_window(clock: FakeClock) -> None:
    limiter = InProcessLimiter(clock=clock)
    subjects = rule_subjects(tpm=1000)
    await limiter.acquire(subjects, 300)  # t=0
    clock.advance(10)
    await limiter.acquire(subjects, 300)  # t=10
    clock.advance(10)
    await limiter.acquire(subjects, 300)  # t=20

    # 500 tokens need the first two reservations gone: at t=70, 50 s from now.
    assert await refused(limiter, subjects, 500) == pytest.approx(50)
    clock.advance(50)
    lease = await limiter.acquire(subjects, 500)
    assert lease.headers["x-ratelimit-remaining-tokens"] == "200"
    assert lease.headers["x-ratelimit-reset-tokens"] == "10s"  # the t=20 reservation leaves next


async def test_a_slot_never_released_expires_after_the_lease_ttl(clock: FakeClock) -> None:
    limiter = InProcessLimiter(clock=clock, lease_ttl_seconds=600)
    subjects = rule_subjects(max_parallel=1)
    await limiter.acquire(subjects, 1)  # a replica that dies holding its slot

    clock.advance(599)
    await refused(limiter, subjects)
    clock.advance(1)
    await limiter.acquire(subjects, 1)


async def test_idle_subjects_are_forgotten(clock: FakeClock) -> None:
    limiter = InProcessLimiter(clock=clock)
    for index in range(100):
        lease = await limiter.acquire([LimitSubject(f"key:{index}", LimitRule(rpm=1, max_parallel=1))], 1)
        await lease.release()

    clock.advance(61)
    await limiter.acquire(rule_subjects(rpm=1), 1)

    assert len(limiter._subjects) == 1


def test_durations_use_openais_format() -> None:
    assert format_duration(0) == "0s"
    assert format_duration(0.0201) == "21ms"
    assert format_duration(8.64) == "8.64s"
    assert format_duration(1) == "1s"
    assert format_duration(60) == "1m0s"
    assert format_duration(90.5) == "1m30.5s"
    assert format_duration(3600) == "1h0m0s"


# Redis: a 0.4 s window and real time.
WINDOW = 0.4


@pytest.fixture
async def redis_limiter(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisLimiter]:
    limiter = RedisLimiter(redis_url, redis_prefix, window_seconds=WINDOW, lease_ttl_seconds=WINDOW)
    yield limiter
    await limiter.close()


async def test_redis_window_frees_when_retry_after_says(redis_limiter: RedisLimiter) -> None:
    subjects = rule_subjects(rpm=3, tpm=30)
    for _ in range(3):
        await redis_limiter.acquire(subjects, 10)

    wait = await refused(redis_limiter, subjects)
    assert 0 < wait <= WINDOW
    await asyncio.sleep(wait)

    await redis_limiter.acquire(subjects, 10)  # the oldest request has left: room for one
    await asyncio.sleep(WINDOW / 2)  # the first three have left, that one has not
    lease = await redis_limiter.acquire(subjects, 10)
    assert lease.headers["x-ratelimit-remaining-requests"] == "1"
    assert lease.headers["x-ratelimit-remaining-tokens"] == "10"


async def test_redis_slot_never_released_expires(redis_limiter: RedisLimiter) -> None:
    subjects = rule_subjects(max_parallel=1)
    await redis_limiter.acquire(subjects, 1)
    await refused(redis_limiter, subjects)

    await asyncio.sleep(WINDOW + 0.05)

    await redis_limiter.acquire(subjects, 1)


async def test_redis_keys_all_expire(redis_limiter: RedisLimiter) -> None:
    lease = await redis_limiter.acquire(rule_subjects(rpm=5, tpm=100, max_parallel=2), 10)
    await lease.settle(5)
    client = redis_limiter.client

    ttls = [await client.pttl(name) for name in redis_limiter.keys(KEY)]

    assert all(0 < ttl <= WINDOW * 1000 + 2 for ttl in ttls), ttls  # -1: no expiry, -2: missing
    await asyncio.sleep(WINDOW + 0.05)
    assert await client.exists(*redis_limiter.keys(KEY)) == 0


async def test_redis_handles_token_logs_longer_than_one_script_page(
    redis_url: str, redis_prefix: str
) -> None:
    # The script reads and prunes token logs in pages of 500 entries; 1,200 reservations span three.
    window = 1.5
    limiter = RedisLimiter(redis_url, redis_prefix, window_seconds=window)
    subjects = rule_subjects(tpm=1200)
    try:
        first = await limiter.acquire(subjects, 1)
        for start in range(0, 1199, 100):  # in waves: 1,199 at once can time out on a busy machine
            await asyncio.gather(*(limiter.acquire(subjects, 1) for _ in range(min(100, 1199 - start))))

        wait = await refused(limiter, subjects, 700)  # the 700 oldest reservations must leave
        assert 0 < wait <= window
        assert await refused(limiter, subjects, 1) <= wait  # one token: the oldest suffices

        await asyncio.sleep(window + 0.05)
        lease = await limiter.acquire(subjects, 1200)  # all 1,200 pruned, the sum back to zero
        assert lease.headers["x-ratelimit-remaining-tokens"] == "0"
        assert first.headers["x-ratelimit-remaining-tokens"] == "1199"
    finally:
        await limiter.close()


async def test_an_unreachable_redis_refuses_with_503() -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(Overloaded, match="rate limiter is unavailable"):
            await limiter.acquire(rule_subjects(rpm=1), 1)
    finally:
        await limiter.close()
