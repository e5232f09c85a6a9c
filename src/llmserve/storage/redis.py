"""The Redis client of the limiter and the budget guard: a bounded pool that queues, never refuses.

redis-py's default asyncio pool opens at most 100 connections and fails the 101st concurrent command
at once (``MaxConnectionsError``), which would turn a burst of requests into 503s. Limits sit on
every request, so their client waits for a free connection instead (``BlockingConnectionPool``), up
to ``timeout``; only then does the command fail (and the request get a 503). Like the cache's client
it fails fast on a refused connection (one immediate retry, no backoff).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

REDIS_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 64


def connect_limits_redis(
    url: str, *, timeout: float = REDIS_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS
) -> Redis:
    try:
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("shared limits need redis-py: pip install 'llmserve[redis]'") from exc
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )
    return Redis.from_pool(pool)
