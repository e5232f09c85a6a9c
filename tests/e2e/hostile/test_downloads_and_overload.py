"""Attacks on what the server holds per request (issue 14, items 6 and 8): many parallel downloads of
a big file (each was held whole in memory: 12 downloads of 100 MB, +1.35 GB), and ten times more
chat clients than the bundled model's engine runs (admission let in 4x that, 503s took 30 s)."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import pytest
from benchmarks.overload_live import drive

from tests.e2e.hostile.attack import Attacker, under_attack
from tests.live_server import LiveServer

pytestmark = pytest.mark.e2e

FILE_BYTES = 64 * 1024 * 1024
DOWNLOADERS = 12
ENGINE_WIDTH = 16  # engine.max_batch_size, the default: what the bundled model decodes at once
OVERLOAD = 10
REFUSAL_P50_BOUND_S = 1.0


@pytest.fixture(scope="module")
def big_file(hostile_server: LiveServer) -> str:
    line = b'{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    content = line * (FILE_BYTES // len(line))
    with httpx.Client(base_url=hostile_server.url, timeout=120) as client:
        answer = client.post("/v1/files", files={"file": ("big.jsonl", content)}, data={"purpose": "batch"})
    assert answer.status_code == 200, answer.text
    file_id: str = answer.json()["id"]
    return file_id


def downloader(server: LiveServer, file_id: str) -> Attacker:
    """Downloads the file again and again, reading it as it comes; returns the bytes each got."""

    def attack(deadline: float) -> list[int]:
        sizes: list[int] = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while time.monotonic() < deadline:
                got = 0
                with client.stream("GET", f"/v1/files/{file_id}/content") as response:
                    assert response.status_code == 200
                    for chunk in response.iter_raw(1024 * 1024):
                        got += len(chunk)
                        if time.monotonic() >= deadline:
                            break
                sizes.append(got)
        return sizes

    return attack


def test_parallel_big_downloads_are_streamed_without_stalling_health(
    hostile_server: LiveServer, big_file: str
) -> None:
    attackers = [downloader(hostile_server, big_file) for _ in range(DOWNLOADERS)]
    report = under_attack(hostile_server, "downloads-12x64MB", 10.0, attackers)
    report.check()
    assert any(size > FILE_BYTES - 200 for sizes in report.results for size in sizes)  # whole ones too


def overload(server: LiveServer, clients: int) -> Attacker:
    """``clients`` closed-loop chat clients that honour Retry-After (benchmarks/overload_live.py: a
    bare keep-alive client, since 160 httpx clients on 2 cores measure their own CPU, not the server)."""
    return lambda deadline: asyncio.run(
        drive(server.url, server.process.pid, clients, deadline - time.monotonic())
    )


def test_ten_times_overload_is_shed_fast_without_stalling_health(hostile_server: LiveServer) -> None:
    attack = overload(hostile_server, ENGINE_WIDTH * OVERLOAD)
    report = under_attack(hostile_server, "chat-overload-10x", 10.0, [attack])
    out = report.results[0]
    served, refused = out.served_s, out.refused_s
    print(
        f"hostile chat-overload-10x: {len(served)} served (p50 {statistics.median(served):.2f} s), "
        f"{len(refused)} refused with 503 (p50 {statistics.median(refused):.3f} s, "
        f"max {max(refused):.3f} s), other {dict(out.other)}"
    )
    report.check()
    assert out.served_s and out.refused_s and not out.other
    assert "(none)" not in out.retry_after  # Retry-After on every 503
    # Shed at the door or after queue.queue_timeout_seconds (1 s), not after 30 s as before.
    assert statistics.median(out.refused_s) < REFUSAL_P50_BOUND_S
