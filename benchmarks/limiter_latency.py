"""What the rate limiter and the budget guard add to each request, in process and in Redis.

    python benchmarks/limiter_latency.py                  # about 30 s on 2 cores with a local Redis
    python benchmarks/limiter_latency.py --ops 20000 --redis-url redis://10.0.0.5:6379/0

One row per backend and shape: the wall time of one request's full limiter cycle, timed on the
client, sequentially (one request at a time, so it is latency, not throughput):

- rate limiter: ``acquire`` + ``settle`` + ``release`` (as the admission calls them), or ``acquire``
  + ``finish`` (both in one), with every dimension limited (RPM, TPM, parallel), for one subject (the
  key) and for two (the key and the model group). Limits are high enough that nothing is refused, and
  the RPM/TPM logs fill up to ``--ops`` entries as a busy key's would. In Redis each step is one
  EVALSHA: three round trips, or two with ``finish``.
- budget guard: ``reserve`` + ``settle`` against a budget that is never reached.

Each row is ``--ops`` timed cycles after ``--warmup`` untimed ones. Redis keys live under a prefix of
this run (``llmserve-bench-<hex>``) and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal

from redis.asyncio import Redis

from llmserve.cache.stores import connect_redis, delete_matching, glob_escape
from llmserve.config import LimitRule
from llmserve.limits.budget import BudgetGuard
from llmserve.limits.ratelimit import InProcessLimiter, LimitSubject, RateLimiter, RedisLimiter
from llmserve.principal import Principal

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
RULE = LimitRule(rpm=10_000_000, tpm=10_000_000_000, max_parallel=1_000)
PRINCIPAL = Principal(key_id="bench", max_budget_usd=Decimal("1000000"), budget_period="monthly")


def percentile(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile (``values`` need not be sorted)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


async def timed(cycle: Callable[[], Awaitable[None]], ops: int, warmup: int) -> list[float]:
    """Microseconds per cycle."""
    for _ in range(warmup):
        await cycle()
    samples: list[float] = []
    for _ in range(ops):
        started = time.perf_counter()
        await cycle()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def limiter_cycle(
    limiter: RateLimiter, subjects: list[LimitSubject], *, finish: bool
) -> Callable[[], Awaitable[None]]:
    async def cycle() -> None:
        lease = await limiter.acquire(subjects, 500)
        if finish:
            await lease.finish(420)
        else:
            await lease.settle(420)
            await lease.release()

    return cycle


def budget_cycle(guard: BudgetGuard) -> Callable[[], Awaitable[None]]:
    async def cycle() -> None:
        reservation = await guard.reserve(PRINCIPAL, Decimal("0.0021"))
        await reservation.settle(Decimal("0.0017"))

    return cycle


async def no_spend(key: str, since: datetime) -> Decimal:
    return Decimal(0)


# (subjects, whether the lease ends with one finish() instead of settle() + release())
SHAPES = [(1, False), (2, False), (1, True), (2, True)]


def shape(count: int, finish: bool) -> str:
    ending = "finish" if finish else "settle + release"
    return f"{count} subject{'s' * (count > 1)}, acquire + {ending}"


def subjects_for(count: int, run: str) -> list[LimitSubject]:
    names = [f"key:bench-{run}", f"model:bench-{run}"]
    return [LimitSubject(name, RULE) for name in names[:count]]


async def measure(args: argparse.Namespace) -> list[tuple[str, list[float]]]:
    rows: list[tuple[str, list[float]]] = []
    for count, finish in SHAPES:
        limiter = InProcessLimiter()
        cycle = limiter_cycle(limiter, subjects_for(count, "mem"), finish=finish)
        rows.append(
            (f"rate limiter, in process, {shape(count, finish)}", await timed(cycle, args.ops, args.warmup))
        )
        await limiter.close()
    guard = BudgetGuard(no_spend)
    rows.append(("budget guard, in process", await timed(budget_cycle(guard), args.ops, args.warmup)))
    await guard.close()

    if args.no_redis:
        return rows
    prefix = f"llmserve-bench-{uuid.uuid4().hex[:12]}"
    client = connect_redis(args.redis_url)
    try:
        await client.ping()
        for count, finish in SHAPES:
            redis_limiter = RedisLimiter(args.redis_url, prefix, client=client)
            cycle = limiter_cycle(redis_limiter, subjects_for(count, f"redis-{finish}"), finish=finish)
            rows.append(
                (f"rate limiter, Redis, {shape(count, finish)}", await timed(cycle, args.ops, args.warmup))
            )
        redis_guard = BudgetGuard(no_spend, args.redis_url, prefix, client=client)
        rows.append(("budget guard, Redis", await timed(budget_cycle(redis_guard), args.ops, args.warmup)))
        ping = await timed(lambda: _ping(client), args.ops, args.warmup)
        rows.append(("(reference: one Redis PING round trip)", ping))
    finally:
        await delete_matching(client, f"{glob_escape(prefix)}*")
        await client.aclose()
    return rows


async def _ping(client: Redis) -> None:
    await client.ping()


def table(rows: list[tuple[str, list[float]]]) -> str:
    lines = ["| what | ops | p50 µs | p99 µs | mean µs |", "|---|---:|---:|---:|---:|"]
    for name, samples in rows:
        lines.append(
            f"| {name} | {len(samples):,} | {statistics.median(samples):,.0f} | "
            f"{percentile(samples, 0.99):,.0f} | {statistics.fmean(samples):,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=5000, help="timed cycles per row (default 5000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed cycles before each row")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--no-redis", action="store_true", help="in-process rows only")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]} on {platform.machine()}, {platform.platform()}")
    rows = asyncio.run(measure(args))
    print(table(rows))


if __name__ == "__main__":
    main()
