"""Metrics in multiprocess mode (--workers N): real worker processes sharing one directory add up, and a
dead worker's live gauges drop out of the scrape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmserve.observability.metrics import MULTIPROC_DIR_ENV

pytestmark = pytest.mark.e2e

_WORKER = textwrap.dedent(
    """
    import json, sys
    from decimal import Decimal
    from llmserve.observability.metrics import Metrics, StateSnapshot

    role, queued, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    metrics = Metrics(["chat"], ["chat-a"])
    assert metrics.multiprocess
    metrics.set_state_source(lambda: StateSnapshot(
        queue_length={"chat": queued}, running={"chat": 1},
        deployment_states={"chat-a": state}, model_loaded={"chat": True},
    ))
    for _ in range(3):
        metrics.observe_request("chat", "/v1/chat/completions", "200", 0.2)
    metrics.add_cost("chat", Decimal("0.5"))
    if role == "scraper":
        print(metrics.render()[0].decode(), end="")
    else:
        metrics.refresh_state()  # what MetricsMiddleware does around each request
        print("ready", flush=True)
        if role == "stays":
            sys.stdin.readline()
    """
)


def _worker(env: dict[str, str], role: str, queued: int, state: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, role, str(queued), state],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_workers_add_up_and_a_dead_workers_gauges_drop_out(tmp_path: Path) -> None:
    env = {**os.environ, MULTIPROC_DIR_ENV: str(tmp_path)}
    alive = _worker(env, "stays", 4, "open")
    try:
        assert alive.stdout is not None and alive.stdout.readline() == "ready\n"
        gone = _worker(env, "exits", 10, "half_open")
        assert gone.communicate(timeout=60)[0] == "ready\n"
        scraper = _worker(env, "scraper", 1, "closed")
        body, _ = scraper.communicate(timeout=60)
    finally:
        alive.communicate("\n", timeout=60)
    samples = {
        (s.name, json.dumps(s.labels, sort_keys=True)): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }

    def get(name: str, **labels: str) -> float:
        return samples[(name, json.dumps(labels, sort_keys=True))]

    ok = {"model": "chat", "status": "200", "endpoint": "/v1/chat/completions"}
    # Counters and histograms: every process that ever recorded, the exited one included.
    assert get("llmserve_requests_total", **ok) == 9
    assert get("llmserve_request_latency_seconds_count", model="chat") == 9
    assert get("llmserve_cost_usd_total", model="chat") == pytest.approx(1.5)
    # Live gauges: the two processes still running (4 + 1 queued, 2 running); the exited one is gone.
    assert get("llmserve_queue_length", model="chat") == 5
    assert get("llmserve_requests_running", model="chat") == 2
    assert get("llmserve_deployment_state", deployment="chat-a") == 2  # the worst live breaker
    assert get("llmserve_model_loaded", model="chat") == 1
