"""How many usage rows a ``kill -9`` loses: answered calls against rows in the ledger after a restart.

    python benchmarks/ledger_durability.py                       # SQLite, journal off then on
    python benchmarks/ledger_durability.py --requests 400 --lines 800

For each setting of ``usage.journal`` (off: the rows wait in memory for the writer, as before issue 14
item 16; on: each row is journaled before its answer leaves), and for each workload, a fresh data dir:

- **interactive**: a real ``llmserve serve`` answers ``--requests`` chat completions from
  ``--concurrency`` clients at once; the server gets SIGKILL as soon as the last answer is in;
- **batch**: one Batch API batch of ``--lines`` lines, SIGKILL as soon as the batch reads
  ``completed`` (every line answered and its output written);

then the server is restarted on the same data dir and ``GET /admin/usage`` counts the rows. The upstream
is the tests' loopback OpenAI server (instant answers), so the calls come as fast as llmserve serves
them, the writer on its default 1 s interval. ``lost`` = answered − rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ helpers, run from anywhere

from tests.live_server import LiveServer, running_server, start_server
from tests.upstreams.openai_app import deployment_for, openai_server

from benchmarks.ledger_overhead import table

GROUP = "remote"
BATCH_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Loss:
    workload: str
    journal: bool
    answered: int
    rows: int


def chat_body(index: int) -> dict[str, Any]:
    return {"model": GROUP, "messages": [{"role": "user", "content": f"question {index}"}], "max_tokens": 8}


async def interactive(server: LiveServer, requests: int, concurrency: int) -> int:
    """Answer ``requests`` calls, ``concurrency`` at a time; returns how many answered 200."""
    queue = iter(range(requests))
    answered = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def worker() -> None:
            nonlocal answered
            for index in queue:
                reply = await client.post("/v1/chat/completions", json=chat_body(index))
                answered += reply.status_code == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered


def batch(server: LiveServer, lines: int) -> int:
    """Run one batch to ``completed``; returns its completed lines."""
    content = "".join(
        json.dumps(
            {"custom_id": f"l{i}", "method": "POST", "url": "/v1/chat/completions", "body": chat_body(i)}
        )
        + "\n"
        for i in range(lines)
    )
    with httpx.Client(base_url=server.url, timeout=60) as client:
        upload = client.post(
            "/v1/files", files={"file": ("in.jsonl", content.encode())}, data={"purpose": "batch"}
        )
        upload.raise_for_status()
        made = client.post(
            "/v1/batches", json={"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions"}
        )
        made.raise_for_status()
        deadline = time.monotonic() + BATCH_TIMEOUT_S
        while (state := client.get(f"/v1/batches/{made.json()['id']}").json())["status"] != "completed":
            if time.monotonic() > deadline or state["status"] in ("failed", "cancelled", "expired"):
                raise RuntimeError(f"the batch did not complete: {state}")
            time.sleep(0.02)
    return int(state["request_counts"]["completed"])


def rows_after_restart(data_dir: Path, env: Mapping[str, str]) -> int:
    with running_server(data_dir, extra_env=env) as restarted:
        usage = httpx.get(f"{restarted.url}/admin/usage", timeout=60)
        usage.raise_for_status()
        return sum(int(row["requests"]) for row in usage.json()["data"])


def measure(workdir: Path, workload: str, journal: bool, args: argparse.Namespace, models: str) -> Loss:
    data_dir = workdir / f"{workload}-journal-{'on' if journal else 'off'}"
    env = {"LLMSERVE_MODELS": models, "LLMSERVE_USAGE__JOURNAL": str(journal).lower()}
    server = start_server(data_dir, extra_env=env)
    try:
        if workload == "interactive":
            answered = asyncio.run(interactive(server, args.requests, args.concurrency))
        else:
            answered = batch(server, args.lines)
        server.process.kill()  # SIGKILL the moment the last answer is in: no shutdown, no last flush
        server.process.wait()
    finally:
        server.stop()
    return Loss(workload, journal, answered, rows_after_restart(data_dir, env))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--requests", type=int, default=200, help="interactive calls answered before the kill"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="interactive clients at once")
    parser.add_argument("--lines", type=int, default=400, help="batch lines answered before the kill")
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    losses: list[Loss] = []
    with (
        tempfile.TemporaryDirectory(prefix="llmserve-durability-") as workdir,
        openai_server(GROUP) as upstream,
    ):
        models = json.dumps([deployment_for(GROUP, upstream)])
        for workload in ("interactive", "batch"):
            for journal in (False, True):
                losses.append(measure(Path(workdir), workload, journal, args, models))
    print("\n## Rows a kill -9 right after the last answer loses (SQLite)\n")
    rows = [
        [
            loss.workload,
            "on" if loss.journal else "off",
            f"{loss.answered}",
            f"{loss.rows}",
            f"{loss.answered - loss.rows}",
        ]
        for loss in losses
    ]
    print(table(["workload", "journal", "answered", "rows after restart", "lost"], rows, text_columns=2))


if __name__ == "__main__":
    main()
