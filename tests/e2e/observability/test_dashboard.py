"""The Grafana dashboard an operator imports, against Prometheus' own tools: every query is valid PromQL
(promtool), and tools/render_dashboard.py draws every panel from a real Prometheus scraping real metrics
(an http.server over llmserve's Metrics). Its layout and queries as JSON are checked in
tests/unit/observability/test_dashboard.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from llmserve.observability.metrics import Metrics, StateSnapshot
from tests.fixtures_monitoring import PROMTOOL_TIMEOUT_S, RENDERER, queries, unavailable

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_query_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path, renderer: ModuleType) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is missing (apt-get install prometheus)")
    variables = {"__rate_interval": "1m", "__interval": "15s", "model": ".*"}
    rules = [
        {"record": f"dashboard_query_{n}", "expr": renderer.substitute(expr, variables)}
        for n, expr in enumerate(queries(dashboard))
    ]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", "queries.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


class _Exporter(BaseHTTPRequestHandler):
    metrics: Metrics

    def do_GET(self) -> None:
        body, content_type = self.metrics.render()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("content-type", content_type)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def live_metrics() -> Iterator[str]:
    """A /metrics endpoint over llmserve's own Metrics, fed with traffic of every kind while it runs."""
    metrics = Metrics(["tiny-chat"], ["tiny-chat", "openai-east"])
    metrics.set_state_source(
        lambda: StateSnapshot(
            queue_length={"tiny-chat": 3},
            running={"tiny-chat": 2},
            deployment_states={"tiny-chat": "closed", "openai-east": "open"},
            model_loaded={"tiny-chat": True},
        )
    )
    stop = threading.Event()

    def feed() -> None:
        while not stop.wait(0.02):
            metrics.observe_request("tiny-chat", "/v1/chat/completions", "200", 0.4)
            metrics.observe_request("tiny-chat", "/v1/chat/completions", "502", 1.2)
            metrics.observe_first_token("tiny-chat", 0.08)
            metrics.observe_inter_token("tiny-chat", 0.02)
            metrics.add_tokens("tiny-chat", 12, 20)
            metrics.add_cost("tiny-chat", Decimal("0.001"))
            metrics.cache_result("exact", hit=True)
            metrics.cache_result("exact", hit=False)
            metrics.observe_overhead(0.002)
            metrics.rate_limited("tiny-chat")
            metrics.guardrail_block("prompt_injection")
            metrics.deployment_failure("openai-east")

    handler = type("Exporter", (_Exporter,), {"metrics": metrics})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threads = [threading.Thread(target=server.serve_forever, daemon=True), threading.Thread(target=feed)]
    for thread in threads:
        thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        threads[1].join()


@pytest.mark.e2e
def test_the_renderer_draws_every_panel_from_a_real_prometheus(live_metrics: str, tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        unavailable("prometheus is missing (apt-get install prometheus)")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    out, page = tmp_path / "dashboard.png", tmp_path / "dashboard.html"
    command = [sys.executable, str(RENDERER), "--llmserve", live_metrics, "--minutes", "0.1"]
    command += ["--scrape-interval", "1", "--out", str(out), "--html", str(page)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    assert "15/15 panels with data" in done.stderr
    assert out.read_bytes().startswith(PNG_MAGIC)
    html = page.read_text()
    assert "No data" not in html
    for title in ("Requests / s", "Request latency p50 / p95 / p99", "Deployment circuit breakers"):
        assert title in html
    assert ">open<" in html and ">loaded<" in html  # the state timelines' value mappings
    assert time.monotonic() - started < 60
