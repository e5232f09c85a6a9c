"""Fixtures for the limit tests: a fake clock, and the real Redis server for the shared variants.

Redis: 127.0.0.1:6379 (override with ``LLMSERVE_TEST_REDIS_URL``). Each test gets its own key prefix,
and every key under it is deleted afterwards. A missing server skips the test with the reason, or
fails it under ``CI=true`` (the rule of ``tests/fixtures_db.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from llmserve.cache.stores import connect_redis, delete_matching, glob_escape
from tests.fixtures_redis import DEFAULT_REDIS_URL  # noqa: F401 - re-exported for benchmarks


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeCalendar:
    """A UTC datetime that moves only when a test sets it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix no other test uses; its keys are deleted after the test."""
    prefix = f"llmserve-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = connect_redis(redis_url)
    try:
        await delete_matching(client, f"{glob_escape(prefix)}*")
    finally:
        await client.aclose()
