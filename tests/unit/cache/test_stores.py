"""The stores answers live in: in-process LRU with TTLs, and Redis (shared by replicas)."""

from __future__ import annotations

import asyncio

import pytest

from llmserve.cache.stores import MemoryStore, RedisStore, connect_redis
from tests.unit.cache.fakes import FakeClock


async def test_memory_store_returns_what_was_set_until_its_ttl_passes() -> None:
    clock = FakeClock()
    store = MemoryStore(10, clock=clock)
    await store.set("a", b"answer", ttl=60)
    clock.advance(59.9)
    assert await store.get("a") == b"answer"
    clock.advance(0.1)
    assert await store.get("a") is None
    assert await store.size() == 0


async def test_memory_store_evicts_the_least_recently_used_beyond_its_bound() -> None:
    store = MemoryStore(2)
    await store.set("a", b"1", ttl=60)
    await store.set("b", b"2", ttl=60)
    assert await store.get("a") == b"1"  # a is now more recent than b
    await store.set("c", b"3", ttl=60)
    assert await store.get("b") is None
    assert await store.get("a") == b"1"
    assert await store.get("c") == b"3"
    assert await store.size() == 2


async def test_memory_store_overwrite_delete_and_clear() -> None:
    store = MemoryStore(5)
    await store.set("a", b"old", ttl=60)
    await store.set("a", b"new", ttl=60)
    assert await store.get("a") == b"new"
    assert await store.size() == 1
    await store.delete("a")
    await store.delete("missing")  # no error
    assert await store.get("a") is None
    await store.set("b", b"x", ttl=60)
    await store.clear()
    assert await store.size() == 0


async def test_memory_store_size_drops_expired_entries() -> None:
    clock = FakeClock()
    store = MemoryStore(10, clock=clock)
    await store.set("short", b"1", ttl=1)
    await store.set("long", b"2", ttl=100)
    clock.advance(2)
    assert await store.size() == 1


def test_memory_store_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError):
        MemoryStore(0)


async def test_redis_store_round_trip_with_expiry(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(redis_url, redis_prefix)
    try:
        await store.set("k", b"\x00binary answer\xff", ttl=60)
        await store.set("short", b"soon gone", ttl=0.05)
        assert await store.get("k") == b"\x00binary answer\xff"
        assert 0 < await store.client.pttl(f"{redis_prefix}:exact:k") <= 60_000
        await asyncio.sleep(0.1)
        assert await store.get("short") is None
        assert await store.size() == 1
        await store.delete("k")
        assert await store.get("k") is None
    finally:
        await store.close()


async def test_redis_store_clear_deletes_only_its_own_prefix(redis_url: str, redis_prefix: str) -> None:
    mine = RedisStore(redis_url, f"{redis_prefix}:mine")
    theirs = RedisStore(redis_url, f"{redis_prefix}:theirs")
    try:
        for index in range(3):
            await mine.set(f"k{index}", b"v", ttl=60)
        await theirs.set("k0", b"kept", ttl=60)
        await mine.clear()
        assert await mine.size() == 0
        assert await theirs.get("k0") == b"kept"
    finally:
        await mine.close()
        await theirs.close()


async def test_redis_store_prefix_with_glob_characters_is_literal(redis_url: str, redis_prefix: str) -> None:
    starred = RedisStore(redis_url, f"{redis_prefix}:*")
    plain = RedisStore(redis_url, f"{redis_prefix}:x")
    try:
        await plain.set("k", b"kept", ttl=60)
        await starred.clear()
        assert await plain.get("k") == b"kept"
    finally:
        await starred.close()
        await plain.close()


async def test_redis_client_fails_fast_when_the_server_is_down() -> None:
    redis = pytest.importorskip("redis")
    client = connect_redis("redis://127.0.0.1:1/0", timeout=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(redis.ConnectionError):
            await client.get("k")
    finally:
        await client.aclose()
    assert loop.time() - started < 1.0  # not redis-py's default of 10 retries with backoff
