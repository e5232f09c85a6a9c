"""What ``POST /v1/responses`` adds over ``POST /v1/chat/completions`` for the same question.

    python benchmarks/responses_overhead.py                   # about a minute on 2 cores
    python benchmarks/responses_overhead.py --requests 2000

One llmserve gateway (``gateway_overhead.py``'s harness, SQLite) in front of the canned OpenAI
upstream, which answers in microseconds, so what is measured is llmserve itself. The same question
(instructions and one user message, 64 tokens at most) goes to every surface, one request at a time
over one warm keep-alive session, the surfaces interleaved request by request so that drift on a
shared machine falls on all alike; non-streamed and streamed. Responses surfaces: ``store: false``
(translation only), ``store: true`` (the default: the response is written to the database before it
is sent), and a continuation (``previous_response_id`` of a stored response: its chain is read back
first). Latency is the client's wall time to the end of the body.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from the root

from benchmarks.gateway_overhead import (
    GROUP,
    canned_upstream,
    machine_line,
    markdown_table,
    openai_deployment,
    percentile,
    running_gateway,
)

INSTRUCTIONS = "You are a helpful assistant."
QUESTION = "What does a connection pool do?"
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"


def surfaces(stream: bool, previous: str) -> dict[str, tuple[str, bytes]]:
    chat = {
        "model": GROUP,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": QUESTION}],
    }
    base = {"model": GROUP, "max_output_tokens": 64, "stream": stream, "instructions": INSTRUCTIONS}
    return {
        "chat completions": (CHAT, orjson.dumps(chat)),
        "responses, store false": (RESPONSES, orjson.dumps({**base, "input": QUESTION, "store": False})),
        "responses, stored": (RESPONSES, orjson.dumps({**base, "input": QUESTION})),
        "responses, continued": (
            RESPONSES,
            orjson.dumps({**base, "input": QUESTION, "previous_response_id": previous}),
        ),
    }


async def timed(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[float, bytes]:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=HEADERS) as response:
        payload = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {payload[:200]!r}")
        return time.perf_counter() - started, payload


async def measure(base: str, requests: int, stream: bool) -> dict[str, list[float]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        first = {"model": GROUP, "input": QUESTION, "max_output_tokens": 64}
        _, stored = await timed(session, base + RESPONSES, orjson.dumps(first))
        paths = surfaces(stream, orjson.loads(stored)["id"])
        for _ in range(max(20, requests // 10)):  # warm-up: the pool, the code paths, the upstream
            for path, body in paths.values():
                await timed(session, base + path, body)
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(requests):
            for name, (path, body) in paths.items():
                wall, _ = await timed(session, base + path, body)
                samples[name].append(wall * 1000)
    return samples


def rows(mode: str, samples: dict[str, list[float]]) -> list[list[str]]:
    chat = percentile(samples["chat completions"], 0.5)
    return [
        [
            mode,
            name,
            f"{percentile(walls, 0.5):.3f}",
            f"{percentile(walls, 0.99):.3f}",
            "" if name == "chat completions" else f"{percentile(walls, 0.5) - chat:+.3f}",
        ]
        for name, walls in samples.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="timed requests per surface and mode")
    args = parser.parse_args(argv)
    table: list[list[str]] = []
    with tempfile.TemporaryDirectory() as workdir, canned_upstream() as upstream:
        config = {"models": [openai_deployment("bench-1", f"{upstream.url}/v1")]}
        with running_gateway(config, Path(workdir)) as gateway:
            for mode, stream in (("json", False), ("stream", True)):
                table += rows(mode, asyncio.run(measure(gateway.url, args.requests, stream)))
    print(machine_line())
    print(f"{args.requests} sequential requests per surface and mode, interleaved\n")
    print(markdown_table(["mode", "surface", "p50 ms", "p99 ms", "added p50 ms"], table, right_from=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
