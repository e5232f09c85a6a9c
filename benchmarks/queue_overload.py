"""The admission queue at 10x its capacity: what is admitted, what is shed, how long the admitted wait.

    python benchmarks/queue_overload.py                         # the product's defaults: about 25 s
    python benchmarks/queue_overload.py --seconds 60 --overload 20 --concurrency 16 --max-queued 256
    python benchmarks/queue_overload.py --live                  # a real server, the bundled model: ~40 s

``--live`` (benchmarks/overload_live.py) starts ``llmserve serve`` with the bundled model and its
defaults and runs 10x ``engine.max_batch_size`` chat clients in a closed loop that honour Retry-After;
it prints the latency of the answers and of the 503s as a client sees them. The rest of this text is
about the in-process mode.

In process, through ``AdmissionQueue`` itself (not the ASGI app: the queue is not wired into the chat
pipeline yet). Each admitted request holds its slot for a simulated upstream call, an
``asyncio.sleep`` of ``--hold-ms`` (default 240 ms: a 64-token answer of the bundled tiny-chat, 14 ms
to the first token and 63 more at 284 tokens/s, the Foundation figures in docs/benchmarks.md),
jittered uniformly by ±50 %.

Capacity is ``--concurrency / hold``; requests arrive open-loop (Poisson) at ``--overload`` times that
for ``--seconds``, so the queue stays full and most requests must be shed. The traffic is skewed the
way it is in practice: one heavy tenant sends ``--heavy-share`` of it, ``--light-tenants`` others
share the rest; ``--urgent-share`` of the requests carry priority 1, the rest the default 5.

The defaults are the product's: ``engine.max_batch_size`` slots (what a local group admits), the
configuration's ``queue.max_queued`` and ``queue.queue_timeout_seconds``.

Printed: requests admitted and shed (503 ``queue_full`` at the door, 503 ``queue_timeout`` after
waiting), the wait of the admitted (p50, p99, max, and split by tenant kind and priority), how long a
refusal took, how long any 503 took (p50, max) and a success end to end (wait + hold), the largest
queue seen, the CPU the process spent per request, and peak RSS. Every request must end (admitted or
503) before a deadline; the script fails otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import resource
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from the root

from llmserve.config import EngineSettings, QueueSettings
from llmserve.errors import QueueFull
from llmserve.limits.queue import AdmissionQueue

GROUP = "bench"
HEAVY = "heavy"


@dataclass
class Outcomes:
    admitted: Counter[str] = field(default_factory=Counter)  # by tenant kind
    offered: Counter[str] = field(default_factory=Counter)
    shed: Counter[str] = field(default_factory=Counter)  # by QueueFull code
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # "all", kinds, "p1"...
    refusal_s: list[float] = field(default_factory=list)
    any_503_s: list[float] = field(default_factory=list)  # queue_full and queue_timeout
    success_s: list[float] = field(default_factory=list)  # wait + hold
    retry_after: list[float] = field(default_factory=list)
    peak_queued: int = 0
    peak_running: int = 0


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def one_request(
    queue: AdmissionQueue,
    rng: random.Random,
    args: argparse.Namespace,
    out: Outcomes,
    tenant: str,
    priority: int,
) -> None:
    kind = "heavy tenant" if tenant == HEAVY else "light tenants"
    out.offered[kind] += 1
    start = time.perf_counter()
    try:
        ticket = await queue.acquire(GROUP, priority, tenant)
    except QueueFull as exc:
        out.shed[exc.code or "?"] += 1
        out.any_503_s.append(time.perf_counter() - start)
        if exc.code == "queue_full":
            out.refusal_s.append(time.perf_counter() - start)
            out.retry_after.append(exc.retry_after)
        return
    with ticket:
        waited = time.perf_counter() - start
        out.admitted[kind] += 1
        for key in ("all", kind, f"priority {priority}"):
            out.waits[key].append(waited)
        out.peak_running = max(out.peak_running, queue.running(GROUP))
        await asyncio.sleep(args.hold_ms / 1000 * rng.uniform(0.5, 1.5))
        out.success_s.append(time.perf_counter() - start)


async def drive(args: argparse.Namespace) -> tuple[Outcomes, float, float]:
    settings = QueueSettings(
        max_concurrency=args.concurrency, max_queued=args.max_queued, queue_timeout_seconds=args.timeout
    )
    queue = AdmissionQueue(settings)
    rng = random.Random(args.seed)
    out = Outcomes()
    rate = args.overload * args.concurrency / (args.hold_ms / 1000)
    light = [f"light{i}" for i in range(args.light_tenants)]
    tasks: set[asyncio.Task[None]] = set()

    async def sample() -> None:
        while True:
            out.peak_queued = max(out.peak_queued, queue.queued(GROUP))
            await asyncio.sleep(0.001)

    sampler = asyncio.create_task(sample())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    deadline = wall0 + args.seconds
    next_at = wall0
    while next_at < deadline:
        next_at += rng.expovariate(rate)
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tenant = HEAVY if rng.random() < args.heavy_share else rng.choice(light)
        priority = 1 if rng.random() < args.urgent_share else settings.default_priority
        task = asyncio.create_task(one_request(queue, rng, args, out, tenant, priority))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    # Nobody may hang: everything still queued ends within the queue timeout plus one hold.
    grace = args.timeout + 2 * args.hold_ms / 1000 + 5
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            raise SystemExit(f"FAIL: {len(pending)} requests neither admitted nor shed after {grace:.0f} s")
    sampler.cancel()
    snapshot = queue.snapshot()[GROUP]
    if snapshot["running"] or snapshot["queued"]:
        raise SystemExit(f"FAIL: slots or waiters left behind: {snapshot}")
    return out, time.process_time() - cpu0, time.perf_counter() - wall0


def report(args: argparse.Namespace, out: Outcomes, cpu_s: float, wall_s: float, rss0: float) -> None:
    capacity = args.concurrency / (args.hold_ms / 1000)
    offered = sum(out.offered.values())
    admitted = sum(out.admitted.values())
    waits = out.waits["all"]
    machine = f"{platform.machine()}, Python {platform.python_version()}"
    print(f"# Admission queue at {args.overload:g}x overload ({machine})")
    print(
        f"concurrency {args.concurrency}, max_queued {args.max_queued}, queue_timeout {args.timeout:g} s, "
        f"hold {args.hold_ms:g} ms ±50 % → capacity {capacity:.1f} req/s; "
        f"offered {offered / args.seconds:.1f} req/s for {args.seconds:g} s ({wall_s:.1f} s with the drain)\n"
    )
    wait_ms = "{:,.0f} / {:,.0f} / {:,.0f}".format(
        *(x * 1e3 for x in (pct(waits, 50), pct(waits, 99), max(waits)))
    )
    refuse_us = f"{pct(out.refusal_s, 50) * 1e6:.0f} / {pct(out.refusal_s, 99) * 1e6:.0f}"
    retry = f"{statistics.median(out.retry_after):.2f}" if out.retry_after else "-"
    rows = [
        ("requests offered", f"{offered:,}"),
        ("admitted", f"{admitted:,} ({admitted / offered:.1%}; {admitted / wall_s:.1f} req/s)"),
        ("shed: 503 queue_full (at the door)", f"{out.shed['queue_full']:,}"),
        ("shed: 503 queue_timeout (after waiting)", f"{out.shed['queue_timeout']:,}"),
        ("wait of the admitted p50 / p99 / max (ms)", wait_ms),
        ("time to refuse (queue_full) p50 / p99 (µs)", refuse_us),
        ("retry_after on queue_full, median (s)", retry),
        ("any 503 p50 / max (ms)", _ms(out.any_503_s)),
        ("success end to end p50 / max (ms)", _ms(out.success_s)),
        ("largest queue seen / max_queued", f"{out.peak_queued} / {args.max_queued}"),
        ("most slots in use / concurrency", f"{out.peak_running} / {args.concurrency}"),
        ("process CPU per offered request (µs)", f"{cpu_s / offered * 1e6:.0f}"),
        ("peak RSS (MiB): before / after", f"{rss0:.1f} / {rss_mib():.1f}"),
    ]
    print("| what | figure |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\n| who | offered | admitted | admitted / offered | wait p50 ms | wait p99 ms |")
    print("|---|---|---|---|---|---|")
    for kind in ("heavy tenant", "light tenants"):
        w, sent, got = out.waits[kind], out.offered[kind], out.admitted[kind]
        share = got / max(1, sent)
        p50, p99 = pct(w, 50) * 1e3, pct(w, 99) * 1e3
        print(f"| {kind} | {sent:,} | {got:,} | {share:.1%} | {p50:,.0f} | {p99:,.0f} |")
    for priority in (1, 5):
        w = out.waits[f"priority {priority}"]
        print(f"| priority {priority} | | {len(w):,} | | {pct(w, 50) * 1e3:,.0f} | {pct(w, 99) * 1e3:,.0f} |")


def _ms(values: list[float]) -> str:
    return f"{pct(values, 50) * 1e3:,.2f} / {max(values, default=float('nan')) * 1e3:,.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long requests arrive")
    parser.add_argument("--overload", type=float, default=10.0, help="arrival rate over capacity")
    queue = QueueSettings()
    parser.add_argument("--concurrency", type=int, default=EngineSettings().max_batch_size)
    parser.add_argument("--max-queued", type=int, default=queue.max_queued)
    parser.add_argument("--timeout", type=float, default=queue.queue_timeout_seconds, help="queue_timeout")
    parser.add_argument("--hold-ms", type=float, default=240.0, help="simulated upstream time (median)")
    parser.add_argument("--heavy-share", type=float, default=0.8, help="share of traffic from one tenant")
    parser.add_argument("--light-tenants", type=int, default=9)
    parser.add_argument("--urgent-share", type=float, default=0.05, help="share with priority 1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--live", action="store_true", help="a real server and the bundled model")
    args = parser.parse_args(argv)
    if args.live:
        from benchmarks.overload_live import run_live

        return run_live(args.overload, args.seconds)
    rss0 = rss_mib()
    out, cpu_s, wall_s = asyncio.run(drive(args))
    report(args, out, cpu_s, wall_s, rss0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
