"""The semantic index: nearest entry above a threshold, expiry, bound, and sharing through Redis."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmserve.cache import semantic
from llmserve.cache.semantic import SemanticIndex
from llmserve.cache.semantic_redis import RedisSemanticIndex
from llmserve.cache.stores import connect_redis
from tests.unit.cache.fakes import FakeClock


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(value * value for value in values))
    return [value / norm for value in values]


def at_angle(cosine: float) -> list[float]:
    """A 3-d vector whose cosine similarity to (1, 0, 0) is ``cosine``."""
    return [cosine, math.sqrt(1 - cosine * cosine), 0.0]


async def test_lookup_returns_the_most_similar_entry_above_the_threshold() -> None:
    index = SemanticIndex(threshold=0.9, max_entries=100)
    await index.add("s", at_angle(0.95), "close", ttl=60)
    await index.add("s", at_angle(0.99), "closest", ttl=60)
    await index.add("s", at_angle(0.5), "far", ttl=60)
    match = await index.lookup("s", [2.0, 0.0, 0.0])  # not normalised: the index does it
    assert match is not None
    assert match.entry_id == "closest"
    assert match.similarity == pytest.approx(0.99, abs=1e-6)


async def test_nothing_above_the_threshold_is_a_miss() -> None:
    index = SemanticIndex(threshold=0.9, max_entries=100)
    await index.add("s", at_angle(0.85), "near-miss", ttl=60)
    assert await index.lookup("s", [1.0, 0.0, 0.0]) is None


async def test_scopes_never_see_each_other() -> None:
    index = SemanticIndex(threshold=0.9, max_entries=100)
    await index.add("tenant-a", unit(1, 0, 0), "a", ttl=60)
    assert await index.lookup("tenant-b", unit(1, 0, 0)) is None


async def test_expired_entries_are_skipped() -> None:
    clock = FakeClock()
    index = SemanticIndex(threshold=0.9, max_entries=100, clock=clock)
    await index.add("s", unit(1, 0, 0), "old", ttl=10)
    await index.add("s", at_angle(0.95), "newer", ttl=100)
    clock.advance(11)
    match = await index.lookup("s", unit(1, 0, 0))
    assert match is not None and match.entry_id == "newer"


async def test_a_veto_falls_through_to_the_next_candidate() -> None:
    index = SemanticIndex(threshold=0.9, max_entries=100)
    await index.add("s", unit(1, 0, 0), "best", ttl=60, text="vetoed")
    await index.add("s", at_angle(0.95), "second", ttl=60, text="fine")
    match = await index.lookup("s", unit(1, 0, 0), accept=lambda text: text != "vetoed")
    assert match is not None and match.entry_id == "second"
    assert await index.lookup("s", unit(1, 0, 0), accept=lambda text: False) is None


async def test_the_bound_evicts_the_oldest_entry_across_scopes() -> None:
    index = SemanticIndex(threshold=0.9, max_entries=3)
    await index.add("a", unit(1, 0, 0), "a1", ttl=60)
    await index.add("b", unit(1, 0, 0), "b1", ttl=60)
    await index.add("a", unit(0, 1, 0), "a2", ttl=60)
    await index.add("b", unit(0, 1, 0), "b2", ttl=60)
    assert len(index) == 3
    assert await index.lookup("a", unit(1, 0, 0)) is None  # a1 was the oldest
    assert (await index.lookup("b", unit(1, 0, 0))) is not None
    for number in range(3, 40):  # many evictions and regrowths stay consistent
        await index.add("a", unit(1, number, 0), f"a{number}", ttl=60)
    assert len(index) == 3
    match = await index.lookup("a", unit(1, 39, 0))
    assert match is not None and match.entry_id == "a39"
    assert await index.lookup("b", unit(0, 1, 0)) is None


async def test_adding_an_entry_again_refreshes_it_in_place() -> None:
    clock = FakeClock()
    index = SemanticIndex(threshold=0.9, max_entries=10, clock=clock)
    await index.add("s", unit(1, 0, 0), "e", ttl=10)
    clock.advance(5)
    await index.add("s", unit(1, 0, 0), "e", ttl=10)
    clock.advance(8)
    assert len(index) == 1
    assert await index.lookup("s", unit(1, 0, 0)) is not None


async def test_zero_vectors_and_other_dimensions_never_match() -> None:
    index = SemanticIndex(threshold=0.9, max_entries=10)
    await index.add("s", [0.0, 0.0, 0.0], "zero", ttl=60)
    assert len(index) == 0
    await index.add("s", unit(1, 0, 0), "three", ttl=60)
    assert await index.lookup("s", unit(1, 0, 0, 0)) is None
    await index.add("s", unit(1, 0, 0, 0), "four", ttl=60)  # the embedding model changed
    assert len(index) == 1
    match = await index.lookup("s", unit(1, 0, 0, 0))
    assert match is not None and match.entry_id == "four"


async def test_a_large_scope_is_searched_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semantic, "OFFLOAD_ROWS", 64)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 32)).astype(np.float32)
    index = SemanticIndex(threshold=0.99, max_entries=1000)
    for row, vector in enumerate(vectors):
        await index.add("s", vector, f"e{row}", ttl=60)
    match = await index.lookup("s", vectors[123])
    assert match is not None and match.entry_id == "e123"


async def test_replicas_share_entries_through_redis(redis_url: str, redis_prefix: str) -> None:
    client = connect_redis(redis_url)
    try:
        first = RedisSemanticIndex(client, redis_prefix, threshold=0.9, max_entries=100)
        second = RedisSemanticIndex(client, redis_prefix, threshold=0.9, max_entries=100)
        await first.add("s", unit(1, 0, 0), "from-first", ttl=60, text="question")
        match = await second.lookup("s", unit(1, 0, 0), accept=lambda text: text == "question")
        assert match is not None and match.entry_id == "from-first"
        await second.add("s", unit(0, 1, 0), "from-second", ttl=60)
        match = await first.lookup("s", unit(0, 1, 0))
        assert match is not None and match.entry_id == "from-second"
        for _ in range(3):  # reading the stream again adds nothing twice
            await first.lookup("s", unit(0, 0, 1))
        assert len(first) == 2
        assert 0 < await client.pttl(f"{redis_prefix}:sem:s") <= 60_000
    finally:
        await client.aclose()


async def test_a_new_replica_reads_the_whole_stream_in_batches(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmserve.cache import semantic_redis

    monkeypatch.setattr(semantic_redis, "SYNC_BATCH", 7)
    client = connect_redis(redis_url)
    try:
        writer = RedisSemanticIndex(client, redis_prefix, threshold=0.99, max_entries=100)
        for number in range(20):
            await writer.add("s", unit(1, number, 0), f"e{number}", ttl=60)
        reader = RedisSemanticIndex(client, redis_prefix, threshold=0.99, max_entries=100)
        match = await reader.lookup("s", unit(1, 19, 0))
        assert match is not None and match.entry_id == "e19"
        assert len(reader) == 20
        await writer.clear()
        assert await client.exists(f"{redis_prefix}:sem:s") == 0
    finally:
        await client.aclose()


async def test_expired_stream_entries_are_not_loaded(redis_url: str, redis_prefix: str) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    client = connect_redis(redis_url)
    try:
        writer = RedisSemanticIndex(client, redis_prefix, threshold=0.9, max_entries=100, clock=clock)
        await writer.add("s", unit(1, 0, 0), "old", ttl=30)
        clock.advance(31)
        reader = RedisSemanticIndex(client, redis_prefix, threshold=0.9, max_entries=100, clock=clock)
        assert await reader.lookup("s", unit(1, 0, 0)) is None
        assert len(reader) == 0
    finally:
        await client.aclose()
