"""Three replicas, one Redis: a key's rate limit and budget hold across them exactly.

Three real ``llmserve serve`` processes share a data dir (the keys table) and the real Redis; a burst
of requests spread over all three admits exactly the key's RPM, and 50 concurrent requests against a
small budget overshoot it by at most one request's cost.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures_db import _unavailable
from tests.live_server import LiveServer, running_server

REDIS_URL = "redis://127.0.0.1:6379/0"

pytestmark = pytest.mark.e2e

MASTER = "master-key-for-shared-limits-0123456789"
PRICE_PER_1K = 1.0  # tiny-chat priced like a big model, so a few requests reach a budget
REPLICAS = 3


def redis_unreachable() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis unreachable at {REDIS_URL}: {exc}"
    finally:
        client.close()
    return ""


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LiveServer]]:
    if problem := redis_unreachable():
        _unavailable(problem)
    directory = tmp_path_factory.mktemp("replicas")
    config = {
        "models": [
            {
                "name": "tiny-chat",
                "model": "tiny-chat",
                "pricing": {"input_per_1k": PRICE_PER_1K, "output_per_1k": PRICE_PER_1K},
            }
        ],
        "redis_url": REDIS_URL,
        "cache": {"namespace": f"test-{uuid.uuid4().hex[:8]}"},
    }
    config_file = directory / "llmserve.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {"LLMSERVE_CONFIG": str(config_file), "LLMSERVE_MASTER_KEY": MASTER}
    data_dir = directory / "data"  # one SQLite file: the keys every replica checks
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(running_server(data_dir, extra_env=env)) for _ in range(REPLICAS)]
        yield servers


def create_key(server: LiveServer, **fields: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/admin/keys", json=fields, headers={"authorization": f"Bearer {MASTER}"}, timeout=30
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def burst(servers: list[LiveServer], key: str, count: int, **body: Any) -> list[httpx.Response]:
    """``count`` concurrent chat requests, spread round-robin over the replicas."""
    payload = {"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 2, "temperature": 0, **body}

    def send(index: int) -> httpx.Response:
        server = servers[index % len(servers)]
        return httpx.post(
            f"{server.url}/v1/chat/completions",
            json=payload,
            headers={"authorization": f"Bearer {key}"},
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


def test_three_replicas_admit_exactly_the_rpm(replicas: list[LiveServer]) -> None:
    rpm = 10
    key = create_key(replicas[0], name="rpm-test", rpm=rpm)["key"]
    responses = burst(replicas, key, 3 * rpm)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == rpm, statuses
    assert statuses.count(429) == 2 * rpm, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit-requests"] == str(rpm)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    admitted = next(r for r in responses if r.status_code == 200)
    assert int(admitted.headers["x-ratelimit-remaining-requests"]) < rpm


def test_a_budget_is_not_overshot_by_more_than_one_request(replicas: list[LiveServer]) -> None:
    budget = Decimal("0.10")
    created = create_key(replicas[1], name="budget-test", max_budget_usd=str(budget), budget_period="daily")
    responses = burst(replicas, created["key"], 50)
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert admitted and refused and len(admitted) + len(refused) == 50
    assert {r.json()["error"]["code"] for r in refused} == {"budget_exceeded"}
    costs = [Decimal(r.json()["usage"]["total_tokens"]) * Decimal(str(PRICE_PER_1K)) / 1000 for r in admitted]
    assert sum(costs) <= budget + max(costs), (sum(costs), len(admitted))
    report = httpx.get(
        f"{replicas[2].url}/admin/usage",
        params={"api_key": created["id"]},
        headers={"authorization": f"Bearer {MASTER}"},
        timeout=30,
    )
    # Every replica writes its own ledger rows into the shared file; replica 2 sees its own at least.
    assert report.status_code == 200, report.text
