"""Where cached answers live: in process (one replica) or in Redis (shared by every replica)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

# A cache must answer fast or not at all: a slow Redis is treated like a missing entry.
REDIS_TIMEOUT_S = 1.0
_SCAN_BATCH = 1000


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def clear(self) -> None: ...

    async def size(self) -> int: ...

    async def close(self) -> None: ...


class MemoryStore:
    """LRU with a per-entry TTL, bounded to ``max_entries``; every operation is O(1)."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # key → (value, expires at)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = (value, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def clear(self) -> None:
        self._entries.clear()

    async def size(self) -> int:
        now = self._clock()
        for key in [key for key, (_, expires_at) in self._entries.items() if expires_at <= now]:
            del self._entries[key]
        return len(self._entries)

    async def close(self) -> None:
        self._entries.clear()


def connect_redis(url: str, *, timeout: float = REDIS_TIMEOUT_S) -> Redis:
    """A client that fails fast and waits for a pooled connection under bursts.

    redis-py's default retries a refused connection 10 times with backoff, and its default pool fails
    the 101st concurrent command at once (MaxConnectionsError); the blocking pool shared with the
    limiter waits for a free connection instead.
    """
    from llmserve.storage.redis import connect_limits_redis

    return connect_limits_redis(url, timeout=timeout)


class RedisStore:
    """Answers under ``<prefix>:exact:<key>``, each with its own expiry (``SET ... PX``).

    Bounded by the Redis server's memory policy (e.g. ``allkeys-lru``), not by a count.
    """

    def __init__(self, url: str, prefix: str, *, client: Redis | None = None) -> None:
        self.prefix = prefix
        self.client = client if client is not None else connect_redis(url)
        self._owns_client = client is None

    def _key(self, key: str) -> str:
        return f"{self.prefix}:exact:{key}"

    @property
    def _pattern(self) -> str:
        return f"{glob_escape(self.prefix)}:exact:*"

    async def get(self, key: str) -> bytes | None:
        value = await self.client.get(self._key(key))
        if value is None:
            return None
        return value if isinstance(value, bytes) else value.encode()

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        milliseconds = int(ttl * 1000)
        if milliseconds <= 0:
            await self.delete(key)
            return
        await self.client.set(self._key(key), value, px=milliseconds)

    async def delete(self, key: str) -> None:
        await self.client.delete(self._key(key))

    async def clear(self) -> None:
        await delete_matching(self.client, self._pattern)

    async def size(self) -> int:
        count = 0
        async for _ in self.client.scan_iter(match=self._pattern, count=_SCAN_BATCH):
            count += 1
        return count

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis MATCH pattern."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


async def delete_matching(client: Redis, pattern: str) -> int:
    """Delete the keys matching ``pattern`` (SCAN, never KEYS: the server keeps serving meanwhile)."""
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=pattern, count=_SCAN_BATCH):
        batch.append(key)
        if len(batch) >= _SCAN_BATCH:
            deleted += await client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await client.unlink(*batch)
    return deleted
