"""What the Ollama surface adds over Chat Completions: the same request to ``/api/chat`` and to
``/v1/chat/completions`` of one llmserve, non-streamed and streamed.

    python benchmarks/ollama_overhead.py                   # defaults: about 30 s
    python benchmarks/ollama_overhead.py --requests 3000 --concurrency 1,16 --repeats 3

The harness of ``gateway_overhead.py``: the canned upstream (answers in microseconds, 20 chunks for a
stream) in its own process, a real ``llmserve serve`` with one OpenAI-compatible deployment in front
of it, and an aiohttp client on uvloop in this process. Both surfaces reach the same deployment
through the same pipeline, so the difference is each surface's parsing and encoding: Ollama's body
and options translated to the pipeline's, and its answer written as a JSON body or NDJSON lines
(instead of a ``chat.completion`` or SSE chunks). Each (surface, mode) runs ``--repeats`` times, the
surfaces' order alternated, each run warmed up first. Latency is to the end of the body; for a
stream also to its first line (TTFB). Percentiles are over every request of the repeats. "own ms" is
the server's ``x-llmserve-overhead-ms`` (its time minus the upstream's, to the answer or the first
event): less noisy than the client's wall time on a loaded machine, but blind to the response's
encoding.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from the root

from benchmarks.gateway_overhead import (
    GROUP,
    HEADERS,
    Cell,
    Run,
    Sample,
    canned_upstream,
    machine_line,
    markdown_table,
    new_session,
    openai_deployment,
    running_gateway,
)
from benchmarks.upstream_http_client import _run

SURFACES = ("openai", "ollama")
MODES = ("json", "stream")
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What does a connection pool do?"},
]


def request_body(surface: str, stream: bool) -> bytes:
    """The same request in each surface's words."""
    if surface == "openai":
        sampling: dict[str, object] = {"max_tokens": 64, "temperature": 0.2}
    else:
        sampling = {"options": {"num_predict": 64, "temperature": 0.2}}
    return orjson.dumps({"model": GROUP, "messages": MESSAGES, **sampling, "stream": stream})


class SurfaceTarget:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, surface: str) -> None:
        self.session = session
        self.surface = surface
        self.url = f"{base_url}/v1/chat/completions" if surface == "openai" else f"{base_url}/api/chat"
        self.bodies = {stream: request_body(surface, stream) for stream in (False, True)}

    async def call(self, stream: bool) -> Sample:
        started = time.perf_counter()
        ttfb: float | None = None
        async with self.session.post(self.url, data=self.bodies[stream], headers=HEADERS) as response:
            if response.status != 200:
                raise RuntimeError(f"{self.url}: status {response.status}: {(await response.read())[:300]!r}")
            overhead = response.headers.get("x-llmserve-overhead-ms")
            if not stream:
                body = orjson.loads(await response.read())
                if ("choices" if self.surface == "openai" else "message") not in body:
                    raise RuntimeError(f"unexpected answer {body!r:.300}")
            else:
                async for line in response.content:  # to the end of the body: the connection is reused
                    if not line.strip():
                        continue
                    ttfb = ttfb or time.perf_counter() - started
                    self._check_line(line)
        return Sample(time.perf_counter() - started, ttfb, None if overhead is None else float(overhead))

    def _check_line(self, line: bytes) -> None:
        payload = line[6:].rstrip() if self.surface == "openai" else line.rstrip()
        if payload != b"[DONE]" and "error" in orjson.loads(payload):
            raise RuntimeError(f"error in the stream: {payload[:300]!r}")


async def drive(target: SurfaceTarget, stream: bool, requests: int, concurrency: int) -> list[Sample]:
    samples: list[Sample] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            samples.append(await target.call(stream))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def measure(
    base_url: str, concurrencies: Sequence[int], requests: int, repeats: int
) -> dict[tuple[str, int, str], Cell]:
    cells: dict[tuple[str, int, str], Cell] = {}
    async with new_session() as session:
        targets = {surface: SurfaceTarget(session, base_url, surface) for surface in SURFACES}
        for concurrency in concurrencies:
            for mode in MODES:
                for repeat in range(repeats):
                    for surface in SURFACES if repeat % 2 == 0 else SURFACES[::-1]:
                        target = targets[surface]
                        await drive(target, mode == "stream", max(4 * concurrency, 100), concurrency)
                        start = time.perf_counter()
                        samples = await drive(target, mode == "stream", requests, concurrency)
                        run = Run(samples, time.perf_counter() - start, 0.0, 0.0, 0.0, 0)
                        cells.setdefault((mode, concurrency, surface), Cell()).runs.append(run)
    return cells


def report(cells: Mapping[tuple[str, int, str], Cell], concurrencies: Sequence[int]) -> str:
    header = [
        "mode",
        "C",
        "surface",
        "req/s",
        "p50 ms",
        "p99 ms",
        "TTFB p50 ms",
        "own ms p50",
        "added p50 ms",
        "added p99 ms",
    ]
    rows = []
    for mode in MODES:
        for concurrency in concurrencies:
            base = cells[mode, concurrency, "openai"]
            for surface in SURFACES:
                cell = cells[mode, concurrency, surface]
                added = [cell.latency_ms(q) - base.latency_ms(q) for q in (0.5, 0.99)]
                ttfb = f"{cell.ttfb_ms(0.5):.3f}" if mode == "stream" else "-"
                rows.append(
                    [mode, str(concurrency), surface, f"{cell.rps:,.0f}"]
                    + [f"{cell.latency_ms(0.5):.3f}", f"{cell.latency_ms(0.99):.3f}", ttfb]
                    + [f"{cell.overhead_ms(0.5):.3f}"]
                    + (["-", "-"] if surface == "openai" else [f"{added[0]:+.3f}", f"{added[1]:+.3f}"])
                )
    return markdown_table(header, rows, right_from=3)


def _concurrency(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per run")
    parser.add_argument("--concurrency", type=_concurrency, default=[1], help="e.g. 1,16")
    parser.add_argument("--repeats", type=int, default=3, help="runs per surface, mode and concurrency")
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    print(f"N={args.requests} per run, repeats={args.repeats}, concurrency {args.concurrency}", flush=True)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmserve-ollama-") as tmp, canned_upstream() as upstream:
        config = {"models": [openai_deployment("bench-1", f"{upstream.url}/v1")]}
        with running_gateway(config, Path(tmp)) as gateway:
            try:
                cells = _run(measure(gateway.url, args.concurrency, args.requests, args.repeats))
            except BaseException:
                print(f"llmserve log tail:\n{gateway.log_tail()}", flush=True)
                raise
    print(f"total {time.perf_counter() - began:.0f} s\n", flush=True)
    print(report(cells, args.concurrency), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
