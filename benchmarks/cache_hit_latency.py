"""How long a response-cache hit takes: in the cache itself, over HTTP, and with 100k entries cached.

    python benchmarks/cache_hit_latency.py                       # about 3 minutes on 2 cores
    python benchmarks/cache_hit_latency.py --lookups 5000 --entries 100000 --http-requests 300

Three parts, each printed as a table:

1. **Hit latency per cache**, in process, through ``ResponseCache.lookup`` (not the ASGI app): the
   caches are built by ``build_cache`` from settings, as the server builds them: exact in memory, exact
   in Redis, semantic in memory, semantic in Redis (both semantic ones with the exact cache on, as a
   server runs them, so a semantic hit is an exact miss first). The exact lookup repeats the stored
   request; the semantic lookup asks a paraphrase of it ("What is the capital of France?" stored,
   "what's the capital of France?" asked), embedded either by the packaged all-MiniLM-L6-v2
   (``LocalEmbeddingProvider``, what the server uses: the embedding is part of every semantic lookup)
   or from a table of precomputed vectors (the cache's own cost: exact miss, index search, lexical
   check, body read). Each row is ``--lookups`` timed lookups after 50 untimed ones; every one is
   checked to be a hit of the expected kind.
2. **End to end over HTTP**: a live ``python -m llmserve serve`` (bundled tiny-chat, exact + semantic
   cache in memory) on loopback, one keep-alive httpx client, sequential requests: an exact hit (the same
   request again), a semantic hit (a paraphrase of a cached question) and a miss (a new question each
   time, ``max_tokens`` 16 with ``ignore_eos`` so every miss generates the same number of tokens).
   Client wall time to the end of the body, and the server's ``x-llmserve-overhead-ms`` header.
3. **Lookups with 100k entries cached**: an exact store holding ``--entries`` answers (lookups of random
   ones), and a semantic index holding ``--entries`` random unit vectors of 384 dimensions in one scope
   (one of them the target, found by a nearby query vector; a miss is a random query). Filled through
   ``ResponseCache.store``. For Redis, the lookups run on a second cache built on the same prefix (a
   second replica); its first lookup reads the whole index from Redis, which is shown on its own, as is
   the wall time of a third replica's first ``COLD_CONCURRENCY`` lookups sent at once.

Redis keys live under a prefix of this run (``llmserve-bench-<hex>``) and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from llmserve.cache.entries import CachedAnswer, CacheHit, CacheKind, CacheRequest, Embedder
from llmserve.cache.service import ResponseCache, build_cache
from llmserve.cache.stores import connect_redis, delete_matching, glob_escape
from llmserve.config import Settings, load_settings
from llmserve.types import ChatMessage, Choice, Completion, GenerationOptions, Usage

QUESTION = "What is the capital of France?"
PARAPHRASE = "what's the capital of France?"
ANSWER_TEXT = (
    "The capital of France is Paris. It has been the country's capital for most of its history and is "
    "also its largest city, home to about two million people (over twelve million in the metropolitan "
    "area). Paris sits on the Seine in the north of the country."
)
UNASKED = "a question nobody asked before?"
DIMENSIONS = 384
WARMUP = 50
STORE_CONCURRENCY = 64
COLD_CONCURRENCY = 4
HEADER = ("cache", "lookups", "p50 µs", "p99 µs", "mean µs")
READY_TIMEOUT_S = 120.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


# -- statistics and tables --------------------------------------------------------------------------


def percentile(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile (``values`` need not be sorted)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


@dataclass(frozen=True)
class Timing:
    name: str
    samples_us: list[float]

    def cells(self) -> list[str]:
        values = self.samples_us
        return [
            self.name,
            f"{len(values):,}",
            f"{statistics.median(values):,.0f}",
            f"{percentile(values, 0.99):,.0f}",
            f"{statistics.fmean(values):,.0f}",
        ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- requests, answers, embedders -------------------------------------------------------------------

OPTIONS = GenerationOptions(temperature=0.0, max_tokens=64)


def chat_request(text: str) -> CacheRequest:
    return CacheRequest(
        group="tiny-chat",
        tenant="key:bench",
        messages=(ChatMessage("user", text),),
        prompt=None,
        options=OPTIONS,
    )


def cached_answer(text: str = ANSWER_TEXT) -> CachedAnswer:
    return CachedAnswer.new(Completion([Choice(0, text, "stop")], Usage(14, 60)), "tiny-chat")


class TableEmbedder:
    """Precomputed vectors: ``table`` for named texts, else row ``int(text.split()[1])`` of ``matrix``
    (filler texts are ``"question <row> ..."``)."""

    def __init__(self, table: dict[str, list[float]], matrix: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        self.table = table
        self.matrix = matrix

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        rows: list[list[float]] = []
        for text in texts:
            if text in self.table:
                rows.append(self.table[text])
            else:
                vector: list[float] = self.matrix[int(text.split()[1])].tolist()
                rows.append(vector)
        return rows


def unit_vectors(count: int, seed: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    matrix = np.random.default_rng(seed).standard_normal((count, DIMENSIONS), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def near(vector: Sequence[float], seed: int, noise: float = 0.01) -> list[float]:
    """A unit vector close to ``vector`` (cosine about 0.98 for 384 dimensions and ``noise`` 0.01)."""
    array = np.asarray(vector, dtype=np.float32)
    array = array + np.random.default_rng(seed).standard_normal(array.shape[0], dtype=np.float32) * noise
    result: list[float] = (array / np.linalg.norm(array)).tolist()
    return result


def cache_settings(
    data_dir: Path, *, semantic: bool, redis_url: str | None, prefix: str, entries: int = 10_000
) -> Settings:
    return load_settings(
        data_dir=str(data_dir),
        redis_url=redis_url,
        cache={
            "namespace": prefix,
            "exact": {"enabled": True, "max_entries": entries},
            "semantic": {"enabled": semantic, "max_entries": max(entries, 1)},
        },
    )


async def time_lookups(
    cache: ResponseCache, requests: Sequence[CacheRequest], kind: CacheKind | None, count: int
) -> list[float]:
    """``count`` lookups cycling through ``requests`` after ``WARMUP``; µs each. ``kind`` None: misses."""
    samples: list[float] = []
    for index in range(WARMUP + count):
        request = requests[index % len(requests)]
        started = time.perf_counter_ns()
        hit: CacheHit | None = await cache.lookup(request)
        elapsed = time.perf_counter_ns() - started
        if (hit.kind if hit is not None else None) != kind:
            got = hit.kind if hit is not None else "miss"
            raise RuntimeError(f"lookup {index}: expected {kind or 'miss'}, got {got}")
        if index >= WARMUP:
            samples.append(elapsed / 1000)
    return samples


async def store_all(cache: ResponseCache, requests: Sequence[CacheRequest], answer: CachedAnswer) -> None:
    """Store every request's answer, ``STORE_CONCURRENCY`` at a time (Redis round trips overlap)."""
    queue = iter(requests)
    stopped = False

    async def worker() -> None:
        for request in queue:
            if stopped:  # redis-py can swallow a cancellation: a cancelled worker must still stop
                return
            await cache.store(request, answer)

    try:
        await asyncio.gather(*(worker() for _ in range(STORE_CONCURRENCY)))
    finally:
        stopped = True


@contextlib.asynccontextmanager
async def redis_prefix(url: str | None) -> AsyncIterator[str]:
    """A key prefix of this run; every key under it is deleted at the end."""
    prefix = f"llmserve-bench-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        if url:
            client = connect_redis(url, timeout=30)
            try:
                # Again until nothing is left: after an interruption, writes already sent may still land.
                for _ in range(10):
                    if not await delete_matching(client, f"{glob_escape(prefix)}:*"):
                        break
                    await asyncio.sleep(0.5)
            finally:
                await client.aclose()


# -- part 1: one hit, each cache --------------------------------------------------------------------


async def part_hits(
    workdir: Path, redis_url: str | None, lookups: int, minilm: Embedder, vectors: dict[str, list[float]]
) -> list[Timing]:
    stored, asked = chat_request(QUESTION), chat_request(PARAPHRASE)
    answer = cached_answer()
    table_embedder = TableEmbedder(vectors, unit_vectors(1, 0))
    backends: list[tuple[str, str | None]] = [("memory", None)]
    if redis_url:
        backends.append(("Redis", redis_url))
    results: list[Timing] = []
    for backend, url in backends:
        async with redis_prefix(url) as prefix:
            exact = build_cache(cache_settings(workdir, semantic=False, redis_url=url, prefix=prefix), None)
            assert exact is not None
            try:
                await exact.store(stored, answer)
                samples = await time_lookups(exact, [stored], "hit", lookups)
                results.append(Timing(f"exact, {backend}", samples))
            finally:
                await exact.close()
        for embedder_name, embedder in (("all-MiniLM-L6-v2", minilm), ("precomputed vector", table_embedder)):
            async with redis_prefix(url) as prefix:
                settings = cache_settings(workdir, semantic=True, redis_url=url, prefix=prefix)
                semantic = build_cache(settings, embedder)
                assert semantic is not None
                try:
                    await semantic.store(stored, answer)
                    samples = await time_lookups(semantic, [asked], "semantic-hit", lookups)
                    results.append(Timing(f"semantic, {backend}, {embedder_name}", samples))
                finally:
                    await semantic.close()
    embed_samples: list[float] = []
    for index in range(WARMUP + lookups):
        started = time.perf_counter_ns()
        await minilm.embed([PARAPHRASE])
        if index >= WARMUP:
            embed_samples.append((time.perf_counter_ns() - started) / 1000)
    results.append(Timing("(all-MiniLM-L6-v2 embedding of the question alone)", embed_samples))
    return results


# -- part 3: 100k entries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LargeResult:
    timings: list[Timing]
    fill_s: dict[str, float]
    first_lookup_ms: dict[str, float]


async def part_large(workdir: Path, redis_url: str | None, entries: int, lookups: int) -> LargeResult:
    filler = [chat_request(f"question {row} about topic {row % 97}?") for row in range(entries - 1)]
    matrix = unit_vectors(entries, seed=1)
    target_vector: list[float] = matrix[entries - 1].tolist()
    vectors = {
        QUESTION: target_vector,
        PARAPHRASE: near(target_vector, seed=2),
        UNASKED: unit_vectors(1, seed=3)[0].tolist(),
    }
    embedder = TableEmbedder(vectors, matrix)
    rng = random.Random(4)
    probes = [filler[rng.randrange(len(filler))] for _ in range(WARMUP + lookups)]
    result = LargeResult([], {}, {})
    backends: list[tuple[str, str | None]] = [("memory", None)]
    if redis_url:
        backends.append(("Redis", redis_url))
    for backend, url in backends:
        async with redis_prefix(url) as prefix:
            settings = cache_settings(workdir, semantic=False, redis_url=url, prefix=prefix, entries=entries)
            exact = build_cache(settings, None)
            assert exact is not None
            try:
                await fill(exact, [*filler, chat_request(QUESTION)], f"exact, {backend}", result)
                samples = await time_lookups(exact, probes, "hit", lookups)
                result.timings.append(Timing(f"exact, {backend}: hit", samples))
            finally:
                await exact.close()
        async with redis_prefix(url) as prefix:
            settings = cache_settings(workdir, semantic=True, redis_url=url, prefix=prefix, entries=entries)
            await semantic_large(settings, embedder, filler, backend, lookups, result)
    return result


async def fill(
    cache: ResponseCache, requests: Sequence[CacheRequest], name: str, result: LargeResult
) -> None:
    started = time.perf_counter()
    await store_all(cache, requests, cached_answer())
    result.fill_s[name] = time.perf_counter() - started
    if (size := await cache.size()) != len(requests):
        raise RuntimeError(f"{name}: {size} entries stored, not {len(requests)}")


async def semantic_large(
    settings: Settings,
    embedder: Embedder,
    filler: Sequence[CacheRequest],
    backend: str,
    lookups: int,
    result: LargeResult,
) -> None:
    """Fill a semantic cache; time lookups on it (memory) or on a second replica (Redis)."""
    redis = settings.redis_url is not None
    caches: list[ResponseCache] = []
    try:
        for _ in range(3 if redis else 1):
            cache = build_cache(settings, embedder)
            assert cache is not None
            caches.append(cache)
        writer, reader = caches[0], caches[1 if redis else 0]
        await fill(writer, [*filler, chat_request(QUESTION)], f"semantic, {backend}", result)
        started = time.perf_counter()
        first = await reader.lookup(chat_request(PARAPHRASE))
        if redis:
            name = f"semantic, {backend}: a second replica's first lookup (reads the index)"
            result.first_lookup_ms[name] = (time.perf_counter() - started) * 1000
        if first is None or first.kind != "semantic-hit":
            raise RuntimeError(f"semantic {backend}: the first lookup was not a semantic hit")
        samples = await time_lookups(reader, [chat_request(PARAPHRASE)], "semantic-hit", lookups)
        result.timings.append(Timing(f"semantic, {backend}: hit", samples))
        samples = await time_lookups(reader, [chat_request(UNASKED)], None, lookups)
        result.timings.append(Timing(f"semantic, {backend}: miss", samples))
        if redis:  # a third replica, asked the same question COLD_CONCURRENCY times at once
            started = time.perf_counter()
            asked = [caches[2].lookup(chat_request(PARAPHRASE)) for _ in range(COLD_CONCURRENCY)]
            hits = sum(hit is not None for hit in await asyncio.gather(*asked))
            name = (
                f"semantic, {backend}: a third replica's first {COLD_CONCURRENCY} lookups, all at once "
                f"({hits} of them hits)"
            )
            result.first_lookup_ms[name] = (time.perf_counter() - started) * 1000
    finally:
        for cache in caches:
            await cache.close()


# -- part 2: HTTP on a live server ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def live_server(workdir: Path) -> Iterator[str]:
    """``python -m llmserve serve`` with the bundled model and the exact + semantic cache in memory."""
    port = free_port()
    config = workdir / "llmserve.yaml"
    config.write_text(yaml.safe_dump({"cache": {"exact": {"enabled": True}, "semantic": {"enabled": True}}}))
    command = [sys.executable, "-m", "llmserve", "serve", "--config", str(config), "--port", str(port)]
    command += ["--data-dir", str(workdir / "data")]
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLMSERVE_")}
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llmserve did not become ready:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class HttpTiming:
    name: str
    client_ms: list[float]
    server_ms: list[float]


def part_http(workdir: Path, requests: int) -> list[HttpTiming]:
    with live_server(workdir) as url, httpx.Client(base_url=url, timeout=60, trust_env=False) as client:

        def post(content: str) -> tuple[str, float, float]:
            body = {
                "messages": [{"role": "user", "content": content}],
                "temperature": 0,
                "max_tokens": 16,
                "ignore_eos": True,
            }
            started = time.perf_counter()
            response = client.post("/v1/chat/completions", json=body)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            return (
                response.headers["x-llmserve-cache"],
                elapsed,
                float(response.headers["x-llmserve-overhead-ms"]),
            )

        def run(name: str, contents: Callable[[int], str], expect: str) -> HttpTiming:
            client_ms: list[float] = []
            server_ms: list[float] = []
            for index in range(WARMUP // 5 + requests):
                status, elapsed, overhead = post(contents(index))
                if status != expect:
                    raise RuntimeError(f"{name}: request {index} was a {status}, not a {expect}")
                if index >= WARMUP // 5:
                    client_ms.append(elapsed)
                    server_ms.append(overhead)
            return HttpTiming(name, client_ms, server_ms)

        for index in range(5):  # load the chat and embedding models, warm every path
            post(f"Warming up, round {index}.")
        if post(QUESTION)[0] != "miss":
            raise RuntimeError("the first question was not a miss")
        runs = [
            run("exact hit", lambda _: QUESTION, "hit"),
            run("semantic hit", lambda _: PARAPHRASE, "semantic-hit"),
            run("miss (16 tokens generated)", lambda i: f"Tell me something about the number {i}.", "miss"),
        ]
    return runs


# -- main -------------------------------------------------------------------------------------------


async def minilm_vectors() -> tuple[Embedder, dict[str, list[float]], Callable[[], Awaitable[None]]]:
    from llmserve.providers.local_embeddings import LocalEmbeddingProvider, packaged_minilm_deployment

    provider = LocalEmbeddingProvider(packaged_minilm_deployment())
    texts = [QUESTION, PARAPHRASE]
    vectors = dict(zip(texts, await provider.embed(texts), strict=True))
    return provider, vectors, provider.close


def redis_available(url: str) -> str:
    """Why ``url`` cannot be used, or ""."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed"
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return ""


async def print_hits(args: argparse.Namespace, workdir: Path, redis_url: str | None) -> None:
    minilm, vectors, close = await minilm_vectors()
    try:
        print("\n## 1. Hit latency per cache: ResponseCache.lookup in process, one answer cached\n")
        hits = await part_hits(workdir, redis_url, args.lookups, minilm, vectors)
        print(table(HEADER, [timing.cells() for timing in hits]))
    finally:
        await close()


def print_http(args: argparse.Namespace, workdir: Path) -> None:
    print(f"\n## 2. End to end over HTTP: live server, tiny-chat, {args.http_requests} requests in turn\n")
    runs = part_http(workdir, args.http_requests)
    rows = [
        [
            run.name,
            f"{len(run.client_ms):,}",
            f"{statistics.median(run.client_ms):.2f}",
            f"{percentile(run.client_ms, 0.99):.2f}",
            f"{statistics.median(run.server_ms):.2f}",
        ]
        for run in runs
    ]
    print(table(["request", "requests", "client p50 ms", "client p99 ms", "server p50 ms"], rows))


async def print_large(args: argparse.Namespace, workdir: Path, redis_url: str | None) -> None:
    print(f"\n## 3. Lookups with {args.entries:,} entries (semantic: one scope, {DIMENSIONS}-d vectors)\n")
    large = await part_large(workdir, redis_url, args.entries, args.lookups)
    print(table(HEADER, [timing.cells() for timing in large.timings]))
    print()
    for name, seconds in large.fill_s.items():
        print(f"- filling {name} with {args.entries:,} entries (ResponseCache.store): {seconds:.1f} s")
    for name, milliseconds in large.first_lookup_ms.items():
        print(f"- {name}: {milliseconds:,.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lookups", type=int, default=2000, help="timed lookups per row (parts 1 and 3)")
    parser.add_argument("--entries", type=int, default=100_000, help="entries cached in part 3")
    parser.add_argument("--http-requests", type=int, default=300, help="timed requests per row (part 2)")
    parser.add_argument("--redis-url", default=os.environ.get("LLMSERVE_TEST_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--no-redis", action="store_true", help="memory rows only")
    parser.add_argument("--skip-hits", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    # A SIGTERM (``timeout``, a CI runner) unwinds like Ctrl-C: asyncio.run cancels the running part, whose
    # cleanup deletes its Redis keys; the synchronous HTTP part gets a KeyboardInterrupt and stops its server.
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    redis_url: str | None = None if args.no_redis else args.redis_url
    if redis_url and (problem := redis_available(redis_url)):
        print(f"Redis at {redis_url} unavailable ({problem}): Redis rows skipped")
        redis_url = None
    cpu = platform.processor() or platform.machine()
    print(
        f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="llmserve-cache-bench-") as workdir:
        if not args.skip_hits:
            asyncio.run(print_hits(args, Path(workdir), redis_url))
        if not args.skip_http:
            print_http(args, Path(workdir))
        if not args.skip_large:
            asyncio.run(print_large(args, Path(workdir), redis_url))


if __name__ == "__main__":
    main()
