"""``llmserve serve --workers 2``: /metrics counts every request, whichever worker served it and
whichever worker answers the scrape.

Requests go out on fresh connections, concurrently, until both workers have served some (their
per-process files in the shared metrics directory say so); then every one of several scrapes must
show the exact totals. When the server stops, that directory is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.live_server import running_server

pytestmark = pytest.mark.e2e

WORKERS = 2
ROUND = 16  # requests per round, 8 at a time
MAX_ROUNDS = 10
SCRAPES = 8
MODEL_ENDPOINT = "/v1/models/{model_id:path}"
CHAT_ENDPOINT = "/v1/chat/completions"


def fresh_get(url: str) -> int:
    """One request on its own connection, so the kernel may hand it to either worker."""
    return httpx.get(url, timeout=30).status_code


def fresh_chat(url: str, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).status_code


def per_worker(directory: Path, endpoint: str) -> dict[str, float]:
    """Requests to ``endpoint`` each worker recorded, read from its own counter file."""
    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        counts[path.stem] = sum(
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == "llmserve_requests_total" and sample.labels.get("endpoint") == endpoint
        )
    return counts


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **match: str) -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and match.items() <= dict(labels).items())


def send_until_both_workers_served(
    directory: Path, endpoint: str, send: Callable[[], int], per_round: int
) -> int:
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(MAX_ROUNDS):
            statuses = list(pool.map(lambda _: send(), range(per_round)))
            assert statuses == [200] * per_round
            sent += per_round
            if sum(1 for count in per_worker(directory, endpoint).values() if count > 0) == WORKERS:
                return sent
    pytest.fail(f"{sent} requests on fresh connections never reached both workers")


def test_every_scrape_counts_every_workers_requests(tmp_path_factory: pytest.TempPathFactory) -> None:
    parent = tmp_path_factory.mktemp("prometheus")
    env = {
        "LLMSERVE_SERVER__WORKERS": str(WORKERS),
        # Where the server makes its fresh multiprocess directory, so this test can look inside.
        "PROMETHEUS_MULTIPROC_DIR": str(parent),
    }
    with running_server(tmp_path_factory.mktemp("workers-data"), extra_env=env) as server:
        (directory,) = parent.glob("llmserve-metrics-*")
        url, model = server.url, server.model
        scrape(url)  # served at all (the app wires Metrics when observability.metrics is on)

        models_sent = send_until_both_workers_served(
            directory, MODEL_ENDPOINT, lambda: fresh_get(f"{url}/v1/models/{model}"), ROUND
        )
        chats_sent = send_until_both_workers_served(
            directory, CHAT_ENDPOINT, lambda: fresh_chat(url, model), 4
        )

        for _ in range(SCRAPES):  # each scrape is answered by one worker or the other: all must agree
            samples = scrape(url)
            assert total(samples, "llmserve_requests_total", endpoint=MODEL_ENDPOINT) == models_sent
            assert total(samples, "llmserve_requests_total", endpoint=CHAT_ENDPOINT) == chats_sent
            chat = {"model": model, "status": "200", "endpoint": CHAT_ENDPOINT}
            assert total(samples, "llmserve_requests_total", **chat) == chats_sent
            assert total(samples, "llmserve_request_latency_seconds_count", model=model) == chats_sent
            assert total(samples, "llmserve_tokens_total", model=model, type="output") > 0
            # Live gauges are summed over the workers: nothing is queued or running once all answered.
            assert total(samples, "llmserve_queue_length", model=model) == 0
            assert total(samples, "llmserve_requests_running", model=model) == 0

        assert server.stop() == 0
    assert list(parent.iterdir()) == []  # the workers' files went with the server
