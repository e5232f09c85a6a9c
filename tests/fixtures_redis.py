"""The real Redis for the tests that share state through it (cache, limits, replicas).

``127.0.0.1:6379`` unless ``LLMSERVE_TEST_REDIS_URL`` says otherwise. A missing server skips the test
with the reason, or fails it under ``CI=true`` (the rule of ``tests/fixtures_db.py``).
"""

from __future__ import annotations

import os

import pytest

from tests.fixtures_db import _unavailable

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url_under_test() -> str:
    return os.environ.get("LLMSERVE_TEST_REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture(scope="session")
def redis_problem() -> str:
    """Why the Redis server cannot be used ("" when it answers PING)."""
    url = redis_url_under_test()
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install 'llmserve[redis]')"
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis unreachable at {url}: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return ""


@pytest.fixture
def redis_url(redis_problem: str) -> str:
    if redis_problem:
        _unavailable(redis_problem)
    return redis_url_under_test()
