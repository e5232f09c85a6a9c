"""What ``POST /v1/messages`` adds over ``POST /v1/chat/completions`` for the same question.

    python benchmarks/anthropic_messages_overhead.py                   # about 30 s on 2 cores
    python benchmarks/anthropic_messages_overhead.py --requests 2000

One llmserve gateway (``gateway_overhead.py``'s harness) in front of the canned OpenAI upstream, which
answers in microseconds, so what is measured is llmserve itself. The same question (a system prompt
and one user message, ``max_tokens`` 64) goes to both surfaces, one request at a time over one warm
keep-alive aiohttp session, the surfaces interleaved request by request so that drift on a shared
machine falls on both alike; non-streamed and streamed (the upstream sends 20 chunks). Latency is the
client's wall time to the end of the body. The Messages surface does more per request: it validates
Anthropic's body, translates it to the pipeline's messages, turns the answer (or each chunk) back into
Anthropic's shape and, for a stream, counts the prompt's tokens for ``message_start``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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

SYSTEM = "You are a helpful assistant."
QUESTION = "What does a connection pool do?"
HEADERS = {"content-type": "application/json", "x-api-key": "sk-bench", "anthropic-version": "2023-06-01"}


def bodies(stream: bool) -> dict[str, bytes]:
    common = {"model": GROUP, "max_tokens": 64, "temperature": 0.2, "stream": stream}
    chat = {
        **common,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
    }
    messages = {**common, "system": SYSTEM, "messages": [{"role": "user", "content": QUESTION}]}
    return {"/v1/chat/completions": orjson.dumps(chat), "/v1/messages": orjson.dumps(messages)}


async def timed(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[float, float]:
    """(wall seconds to the end of the body, the gateway's x-llmserve-overhead-ms)."""
    started = time.perf_counter()
    async with session.post(url, data=body, headers=HEADERS) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status}")
        return time.perf_counter() - started, float(response.headers["x-llmserve-overhead-ms"])


async def measure(base: str, requests: int, stream: bool) -> dict[str, tuple[list[float], list[float]]]:
    samples: dict[str, tuple[list[float], list[float]]] = {}
    paths = bodies(stream)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for _ in range(max(20, requests // 10)):  # warm-up: the pool, the code paths, the upstream
            for path, body in paths.items():
                await timed(session, base + path, body)
        for _ in range(requests):
            for path, body in paths.items():
                wall, overhead = await timed(session, base + path, body)
                walls, overheads = samples.setdefault(path, ([], []))
                walls.append(wall * 1000)
                overheads.append(overhead)
    return samples


def rows(mode: str, samples: dict[str, tuple[list[float], list[float]]]) -> list[list[str]]:
    chat = samples["/v1/chat/completions"][0]
    out = []
    for path, (walls, overheads) in samples.items():
        added = "" if walls is chat else f"{percentile(walls, 0.5) - percentile(chat, 0.5):+.3f}"
        out.append(
            [
                mode,
                path,
                f"{percentile(walls, 0.5):.3f}",
                f"{percentile(walls, 0.99):.3f}",
                f"{statistics.median(overheads):.3f}",
                added,
            ]
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per surface and mode")
    args = parser.parse_args(argv)
    table: list[list[str]] = []
    with tempfile.TemporaryDirectory() as workdir, canned_upstream() as upstream:
        config = {"models": [openai_deployment("bench-1", f"{upstream.url}/v1")]}
        with running_gateway(config, Path(workdir)) as gateway:
            for mode, stream in (("json", False), ("stream", True)):
                table += rows(mode, asyncio.run(measure(gateway.url, args.requests, stream)))
    header = ["mode", "surface", "p50 ms", "p99 ms", "overhead-ms header (median)", "added p50 ms"]
    print(machine_line())
    print(f"{args.requests} sequential requests per surface and mode, interleaved\n")
    print(markdown_table(header, table, right_from=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
