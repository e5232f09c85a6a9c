"""Memory-leak gate: the server's RSS after 10k and after 100k mixed requests, flat within 10 %.

    python benchmarks/leak_gate.py                              # 10k + 90k requests: about 10 min
    python benchmarks/leak_gate.py --first 2000 --total 20000   # a quick look

Three processes on loopback: the canned OpenAI upstream of ``gateway_overhead.py`` (answers in
microseconds), ``llmserve serve`` with two groups, ``chat`` (a ``provider: openai`` deployment on that
upstream, the default group) and ``tiny`` (the bundled local model, used only to tokenize), and this
process: ``--concurrency`` keep-alive clients (``overload_live.LightClient``) sending a fixed mix,
drawn from a seeded generator:

``/health``, ``/v1/models``, chat (plain and streamed) to the upstream, the seed API
(``/chat/new/message/``, which stores a conversation each time), ``/v1/tokenize`` on the local
model, ``/v1/estimate``, and 4xx: a body that is not JSON (400), an unknown model (404), a missing
file (404).

RSS (``VmRSS`` of the server) is read after ``--first`` requests and again after ``--total``; the gate
holds when the second is at most 10 % above the first. Warm-up growth (caches filling, the model's
tokenizer loading, arenas reaching their working size) happens before the first reading; a leak of
even 1 KB per request would show as +90 MB over the next 90k. Any 5xx fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from the root

from benchmarks.gateway_overhead import canned_upstream, openai_deployment, running_gateway
from benchmarks.overload_live import LightClient, _rss_kib

FLAT_WITHIN = 0.10
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
Request = tuple[str, str, bytes]  # method, path, body

MIX: list[tuple[float, Callable[[random.Random], Request]]] = [
    (0.15, lambda _: ("GET", "/health", b"")),
    (0.10, lambda _: ("GET", "/v1/models", b"")),
    (0.25, lambda _: ("POST", "/v1/chat/completions", orjson.dumps(CHAT))),
    (0.10, lambda _: ("POST", "/v1/chat/completions", orjson.dumps({**CHAT, "stream": True}))),
    (
        0.10,
        lambda rng: (
            "POST",
            "/chat/new/message/",
            orjson.dumps({"prompt": f"hi {rng.random()}", "max_tokens": 8}),
        ),
    ),
    (
        0.10,
        lambda rng: (
            "POST",
            "/v1/tokenize",
            orjson.dumps({"model": "tiny", "prompt": f"count me {rng.random()}"}),
        ),
    ),
    (0.05, lambda _: ("POST", "/v1/estimate", orjson.dumps({**CHAT, "max_tokens": 32}))),
    (0.05, lambda _: ("POST", "/v1/chat/completions", b"{not json")),
    (0.05, lambda _: ("POST", "/v1/chat/completions", orjson.dumps({**CHAT, "model": "no-such-model"}))),
    (0.05, lambda _: ("GET", "/v1/files/file-missing", b"")),
]


def config(upstream_url: str) -> dict[str, object]:
    return {
        "default_model": "chat",
        "models": [
            openai_deployment("chat-upstream", f"{upstream_url}/v1", name="chat"),
            {"name": "tiny", "provider": "local", "model": "tiny-chat"},
        ],
    }


class Driver:
    def __init__(self, url: str, seed: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rng = random.Random(seed)
        self.weights = [weight for weight, _ in MIX]
        self.sent = 0
        self.statuses: Counter[int] = Counter()

    async def run(self, until: int, concurrency: int) -> None:
        await asyncio.gather(*(self._client(until) for _ in range(concurrency)))

    async def _client(self, until: int) -> None:
        client = LightClient(self.host, self.port)
        try:
            while self.sent < until:
                self.sent += 1
                make = self.rng.choices(MIX, self.weights)[0][1]
                method, path, body = make(self.rng)
                answer = await client.request(method, path, body)
                self.statuses[answer.status] += 1
        finally:
            await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--first", type=int, default=10_000, help="requests before the first RSS reading")
    parser.add_argument("--total", type=int, default=100_000, help="requests before the second")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as workdir,
        canned_upstream() as upstream,
        running_gateway(config(upstream.url), Path(workdir)) as server,
    ):
        driver = Driver(server.url, args.seed)
        started = time.perf_counter()
        asyncio.run(driver.run(args.first, args.concurrency))
        first_kib, first_s = _rss_kib(server.pid), time.perf_counter() - started
        asyncio.run(driver.run(args.total, args.concurrency))
        total_kib, total_s = _rss_kib(server.pid), time.perf_counter() - started
    growth = total_kib / first_kib - 1
    flat = growth <= FLAT_WITHIN
    server_errors = sum(n for status, n in driver.statuses.items() if status >= 500)
    print(
        f"# Leak gate ({platform.machine()}, Python {platform.python_version()}, {args.concurrency} clients)"
    )
    print("| what | figure |\n|---|---|")
    print(f"| RSS after {args.first:,} requests | {first_kib / 1024:,.1f} MiB ({first_s:.0f} s) |")
    print(f"| RSS after {args.total:,} requests | {total_kib / 1024:,.1f} MiB ({total_s:.0f} s) |")
    print(f"| growth | {growth:+.1%} ({'flat' if flat else 'NOT flat'} within {FLAT_WITHIN:.0%}) |")
    print(f"| statuses | {dict(sorted(driver.statuses.items()))} |")
    return 0 if flat and not server_errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
