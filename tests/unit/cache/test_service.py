"""ResponseCache as the chat pipeline uses it: exact and semantic hits, the client's cache controls,
tenant isolation, replicas sharing Redis, and a Redis that is down."""

from __future__ import annotations

import logging

import pytest

from llmserve.cache.entries import CacheRequest
from llmserve.cache.semantic import SemanticIndex
from llmserve.cache.service import ResponseCache, build_cache
from llmserve.cache.stores import MemoryStore, connect_redis
from llmserve.config import Settings
from llmserve.types import GenerationOptions
from tests.unit.cache.fakes import FakeClock, ModelEmbedder, TableEmbedder, answer, cache_settings, chat

QUESTION = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a Python list?"
OTHER_QUESTION = "How do I sort a list in Python?"


def exact_cache(clock: FakeClock | None = None) -> ResponseCache:
    store = MemoryStore(100, clock=clock) if clock is not None else MemoryStore(100)
    return ResponseCache(cache_settings(), store)


def semantic_cache(embedder: ModelEmbedder | TableEmbedder, *, exact: bool = True) -> ResponseCache:
    settings = cache_settings(exact=exact, semantic=True)
    index = SemanticIndex(settings.semantic.threshold, settings.semantic.max_entries)
    return ResponseCache(settings, MemoryStore(100), index, embedder)


async def test_exact_miss_then_hit() -> None:
    cache = exact_cache()
    assert await cache.lookup(chat(QUESTION)) is None
    await cache.store(chat(QUESTION), answer("Use reversed() or list.reverse()."))
    hit = await cache.lookup(chat(QUESTION))
    assert hit is not None
    assert hit.kind == "hit" and hit.similarity is None
    assert hit.answer.completion.choices[0].text == "Use reversed() or list.reverse()."
    assert hit.answer.model == "gpt-small"


async def test_no_cache_skips_the_lookup_but_stores_the_fresh_answer() -> None:
    cache = exact_cache()
    await cache.store(chat(QUESTION), answer("old"))
    assert await cache.lookup(chat(QUESTION, no_cache=True)) is None
    await cache.store(chat(QUESTION, no_cache=True), answer("fresh"))
    hit = await cache.lookup(chat(QUESTION))
    assert hit is not None and hit.answer.completion.choices[0].text == "fresh"


async def test_no_store_keeps_nothing() -> None:
    cache = exact_cache()
    await cache.store(chat(QUESTION, no_store=True), answer("secret"))
    assert await cache.lookup(chat(QUESTION)) is None
    assert await cache.size() == 0


async def test_the_client_ttl_overrides_the_configured_one() -> None:
    clock = FakeClock()
    cache = exact_cache(clock)
    await cache.store(chat(QUESTION, ttl=5), answer("short-lived"))
    await cache.store(chat(OTHER_QUESTION), answer("default ttl"))
    clock.advance(6)
    assert await cache.lookup(chat(QUESTION)) is None
    assert await cache.lookup(chat(OTHER_QUESTION)) is not None
    await cache.store(chat(QUESTION, ttl=0), answer("not kept"))
    assert await cache.lookup(chat(QUESTION)) is None


async def test_random_samples_are_only_cached_when_the_client_opts_in() -> None:
    cache = exact_cache()
    sampled = GenerationOptions(temperature=0.8)
    await cache.store(chat(QUESTION, options=sampled), answer("a sample"))
    assert await cache.lookup(chat(QUESTION, options=sampled)) is None
    await cache.store(chat(QUESTION, options=sampled, opt_in=True), answer("a sample"))
    assert await cache.lookup(chat(QUESTION, options=sampled, opt_in=True)) is not None


@pytest.mark.parametrize("finish_reason", ["cancelled", "content_filter"])
async def test_partial_or_filtered_answers_are_not_stored(finish_reason: str) -> None:
    cache = exact_cache()
    await cache.store(chat(QUESTION), answer("half an ans", finish_reason=finish_reason))
    assert await cache.lookup(chat(QUESTION)) is None


async def test_tenants_never_see_each_others_answers(minilm: ModelEmbedder) -> None:
    cache = semantic_cache(minilm)
    await cache.store(chat(QUESTION, tenant="tenant-a"), answer("for tenant a"))
    assert await cache.lookup(chat(QUESTION, tenant="tenant-b")) is None
    assert await cache.lookup(chat(PARAPHRASE, tenant="tenant-b")) is None
    assert await cache.lookup(chat(PARAPHRASE, tenant="tenant-a")) is not None


async def test_a_paraphrase_is_a_semantic_hit(minilm: ModelEmbedder) -> None:
    cache = semantic_cache(minilm)
    await cache.store(chat(QUESTION), answer("Use reversed()."))
    hit = await cache.lookup(chat(PARAPHRASE))
    assert hit is not None
    assert hit.kind == "semantic-hit"
    assert hit.similarity is not None and hit.similarity >= cache.settings.semantic.threshold
    assert hit.answer.completion.choices[0].text == "Use reversed()."


async def test_a_different_question_is_a_miss(minilm: ModelEmbedder) -> None:
    cache = semantic_cache(minilm)
    await cache.store(chat(QUESTION), answer("Use reversed()."))
    assert await cache.lookup(chat(OTHER_QUESTION)) is None
    assert await cache.lookup(chat("How do I convert a string to an integer in JavaScript?")) is None


async def test_a_paraphrase_under_another_system_prompt_or_history_is_a_miss(minilm: ModelEmbedder) -> None:
    cache = semantic_cache(minilm)
    await cache.store(chat(QUESTION, system="Answer briefly."), answer("reversed()"))
    assert await cache.lookup(chat(PARAPHRASE, system="Answer in French.")) is None
    assert await cache.lookup(chat(PARAPHRASE)) is None
    history = [("user", "hi"), ("assistant", "hello")]
    assert await cache.lookup(chat(PARAPHRASE, system="Answer briefly.", history=history)) is None
    assert await cache.lookup(chat(PARAPHRASE, system="Answer briefly.")) is not None


async def test_text_the_embedder_cannot_read_is_only_matched_exactly(minilm: ModelEmbedder) -> None:
    # all-MiniLM-L6-v2 gives "boiling point" and "freezing point" in Chinese a similarity of 1.0.
    cache = semantic_cache(minilm)
    await cache.store(chat("水的沸点是多少？"), answer("100°C"))
    assert await cache.lookup(chat("水的冰点是多少？")) is None
    hit = await cache.lookup(chat("水的沸点是多少？"))
    assert hit is not None and hit.kind == "hit"


async def test_raw_prompts_are_never_embedded() -> None:
    embedder = TableEmbedder()
    cache = semantic_cache(embedder)
    request = CacheRequest("gpt-small", "tenant-a", None, QUESTION, GenerationOptions(temperature=0))
    await cache.store(request, answer("completion"))
    assert await cache.lookup(request) is not None
    assert embedder.calls == 0


async def test_a_missed_lookup_embeds_once_for_the_store_that_follows() -> None:
    embedder = TableEmbedder({QUESTION: [1.0, 0.0], PARAPHRASE: [0.99, 0.141]})
    cache = semantic_cache(embedder)
    assert await cache.lookup(chat(QUESTION)) is None
    await cache.store(chat(QUESTION), answer("reversed()"))
    assert embedder.calls == 1


async def test_an_embedder_failure_is_a_miss_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    embedder = TableEmbedder({QUESTION: [1.0, 0.0]})
    cache = semantic_cache(embedder)
    await cache.store(chat(QUESTION), answer("reversed()"))
    embedder.error = RuntimeError("embedding server down")
    with caplog.at_level(logging.WARNING):
        assert await cache.lookup(chat(PARAPHRASE)) is None
        assert await cache.lookup(chat(QUESTION)) is not None  # exact still answers
    assert "embedding server down" in caplog.text


async def test_semantic_only_answers_a_repeat_as_a_semantic_hit() -> None:
    cache = semantic_cache(TableEmbedder({QUESTION: [1.0, 0.0]}), exact=False)
    await cache.store(chat(QUESTION), answer("reversed()"))
    hit = await cache.lookup(chat(QUESTION))
    assert hit is not None and hit.kind == "semantic-hit"


async def test_clear_forgets_everything(minilm: ModelEmbedder) -> None:
    cache = semantic_cache(minilm)
    await cache.store(chat(QUESTION), answer("reversed()"))
    await cache.clear()
    assert await cache.lookup(chat(QUESTION)) is None
    assert await cache.lookup(chat(PARAPHRASE)) is None


def redis_settings(url: str, prefix: str, *, semantic: bool = True) -> Settings:
    return Settings.model_validate(
        {
            "redis_url": url,
            "cache": {"exact": {"enabled": True}, "semantic": {"enabled": semantic}, "namespace": prefix},
        }
    )


async def test_replicas_sharing_redis_see_each_others_answers(
    redis_url: str, redis_prefix: str, minilm: ModelEmbedder
) -> None:
    settings = redis_settings(redis_url, redis_prefix)
    first, second = build_cache(settings, minilm), build_cache(settings, minilm)
    assert first is not None and second is not None
    try:
        await first.store(chat(QUESTION), answer("from replica one"))
        exact = await second.lookup(chat(QUESTION))
        assert exact is not None and exact.kind == "hit"
        similar = await second.lookup(chat(PARAPHRASE))
        assert similar is not None and similar.kind == "semantic-hit"
        assert similar.answer.completion.choices[0].text == "from replica one"
        assert await second.lookup(chat(PARAPHRASE, tenant="tenant-b")) is None
        client = connect_redis(redis_url)
        try:  # everything lives under the configured namespace
            assert [key async for key in client.scan_iter(match=f"{redis_prefix}:cache:exact:*")]
            assert [key async for key in client.scan_iter(match=f"{redis_prefix}:cache:sem:*")]
        finally:
            await client.aclose()
    finally:
        await first.close()
        await second.close()


async def test_a_redis_that_is_down_means_misses_not_errors(caplog: pytest.LogCaptureFixture) -> None:
    settings = redis_settings("redis://127.0.0.1:1/0", "llmserve-test")
    cache = build_cache(settings, TableEmbedder({QUESTION: [1.0, 0.0]}))
    assert cache is not None
    try:
        with caplog.at_level(logging.WARNING):
            assert await cache.lookup(chat(QUESTION)) is None
            await cache.store(chat(QUESTION), answer("not kept"))
            assert await cache.lookup(chat(QUESTION)) is None
        assert "response cache lookup failed" in caplog.text
    finally:
        await cache.close()


async def test_without_redis_each_process_has_its_own_cache() -> None:
    assert build_cache(Settings.model_validate({}), None) is None  # both caches off: nothing to build
    settings = Settings.model_validate({"cache": {"exact": {"enabled": True}}})
    first, second = build_cache(settings, None), build_cache(settings, None)
    assert first is not None and second is not None
    await first.store(chat(QUESTION), answer("in process"))
    assert await first.lookup(chat(QUESTION)) is not None
    assert await second.lookup(chat(QUESTION)) is None


def test_build_cache_refuses_semantic_without_an_embedder() -> None:
    settings = Settings.model_validate({"cache": {"semantic": {"enabled": True}}})
    with pytest.raises(ValueError, match="no embedder"):
        build_cache(settings, None)
