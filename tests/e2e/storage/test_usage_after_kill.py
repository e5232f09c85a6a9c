"""kill -9 right after the last answer loses no usage row: the restarted server has every one.

The writer interval is a minute, so without the journal no row at all would be in the database when
the server dies; budgets are seeded from these rows, so a lost one is spend forgotten. A loopback
upstream answers (a server without a local model starts in seconds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import LiveServer, running_server, sse_data, start_server
from tests.upstreams.openai_app import deployment_for, openai_server

pytestmark = pytest.mark.e2e

ANSWERS = 6  # of each kind: non-streamed, streamed to [DONE]
JOB_TIMEOUT_S = 60.0


def answer_all(server: LiveServer) -> int:
    """Answered calls of every kind that bills one: bodies, streams read to their end, an async job."""
    body: dict[str, Any] = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Hello!"}],
        "max_tokens": 4,
        "cache": {"no-cache": True, "no-store": True},
    }
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(ANSWERS):
            assert client.post("/v1/chat/completions", json=body).status_code == 200
        for _ in range(ANSWERS):
            with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as reply:
                assert reply.status_code == 200
                assert list(sse_data(reply.iter_lines()))[-1] == "[DONE]"
        job = client.post("/v1/async/chat/completions", json=body)
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while client.get(f"/v1/jobs/{job.json()['id']}").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the async job did not complete"
            time.sleep(0.05)
    return 2 * ANSWERS + 1


def test_every_answered_request_has_its_row_after_kill_9(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with openai_server("remote") as upstream:
        env = {
            "LLMSERVE_DATABASE_URL": database_url,
            "LLMSERVE_MODELS": json.dumps([deployment_for("remote", upstream)]),
            "LLMSERVE_USAGE__FLUSH_INTERVAL_SECONDS": "60",
        }
        server = start_server(data_dir, extra_env=env)
        try:
            answered = answer_all(server)
            server.process.kill()  # SIGKILL: no lifespan shutdown, no last flush
            server.process.wait()
        finally:
            server.stop()
        assert list((data_dir / "usage-journal").glob("*.journal")), "the dead server left its journal"

        with running_server(data_dir, extra_env=env) as restarted:
            usage = httpx.get(f"{restarted.url}/admin/usage", timeout=30)
            assert usage.status_code == 200, usage.text
            assert [(row["model"], row["requests"]) for row in usage.json()["data"]] == [("remote", answered)]
            assert list((data_dir / "usage-journal").glob("*.journal")) == []  # recovered, then deleted
    assert "rows recovered from" in restarted.log_tail(200)
