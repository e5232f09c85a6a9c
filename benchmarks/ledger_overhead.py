"""What the usage ledger costs a request: per ``record()`` call, and in request latency with it on vs off.

    python benchmarks/ledger_overhead.py                          # SQLite in a temporary data dir
    python benchmarks/ledger_overhead.py --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test

``--postgres`` takes an admin URL: a throwaway database is created there for the run and dropped after.

(a) **Per call**, in one event loop: ``Accounting.charge`` as ``ChatService`` calls it after every answer
(look up the deployment's config, price the tokens as a ``Decimal``, build the ``UsageRecord``, and
``UsageLedger.record``, which appends to the in-memory buffer and writes the row's line to the journal
file, as the app builds it), timed one call at a time; then the same
call without a ledger (it still prices the call, for the metrics), and each of the steps alone. The
deployment is an ``openai`` one for ``gpt-4o-mini`` (priced from the built-in table: the longest-prefix
search a remote deployment pays) in a registry of ``--groups`` model groups. The writer is not started
here, so nothing is written while this is timed; the rows are then written with ``flush()`` and timed
too: that is the work the background writer does off the request path (but on the same event loop and
cores), per row, in batches of ``usage.batch_size``. ``record`` alone is timed with the journal (one
``os.write`` of a JSON line) and without it (``usage.journal: false``: the buffer only).
How many rows a ``kill -9`` loses with and without the journal: ``benchmarks/ledger_durability.py``.

(b) **Request latency on the ASGI app** (``create_app`` with the bundled tiny-chat, its lifespan run in
this process, an ``httpx.AsyncClient`` over ``ASGITransport``: no sockets), ledger on (the app as built,
background writer running) vs off (the same app with a shallow copy of its ``ChatService`` swapped in,
whose ``Accounting`` is a copy with ``ledger=None``: cache, admission and metrics stay as they are).
Two fast request paths keep the model's time small and steady: an exact cache hit, and a 1-token
generation with the cache skipped (``cache: {"no-cache": true, "no-store": true}``). ``--rounds`` rounds
of ``--block`` requests on, then off (the order alternating per round), after a warm-up of each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from llmserve.api.deps import Services
from llmserve.app import create_app
from llmserve.config import Settings, load_settings, sqlite_url_for
from llmserve.providers.http import UpstreamHTTP
from llmserve.request_context import RequestContext
from llmserve.routing.route_info import RouteInfo
from llmserve.services.accounting import Accounting
from llmserve.services.models import ModelRegistry
from llmserve.services.pricing import cost_usd
from llmserve.services.usage import UsageLedger, UsageRecord, journal_dir_for
from llmserve.storage.db import Database
from llmserve.types import Usage

GROUP = "gpt-mini"
WARMUP = 1000


# -- statistics and tables --------------------------------------------------------------------------


def percentile(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile (``values`` need not be sorted)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """A GitHub pipe table; the first ``text_columns`` columns left-aligned, the rest right-aligned."""
    rule = "|" + "---|" * text_columns + "---:|" * (len(header) - text_columns)
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def us_row(name: str, samples_ns: Sequence[int]) -> list[str]:
    values = [sample / 1000 for sample in samples_ns]
    return [
        name,
        f"{len(values):,}",
        f"{statistics.median(values):.2f}",
        f"{percentile(values, 0.99):.2f}",
        f"{statistics.fmean(values):.2f}",
    ]


# -- (a) one record() call --------------------------------------------------------------------------


def settings_for(data_dir: Path, database_url: str | None, groups: int, **extra: Any) -> Settings:
    models: list[dict[str, Any]] = [
        {
            "name": f"other-{index}",
            "provider": "openai",
            "api_base": "http://127.0.0.1:9/v1",
            "model": "gpt-4o",
        }
        for index in range(groups - 1)
    ]
    models.append(
        {"name": GROUP, "provider": "openai", "api_base": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini"}
    )
    return load_settings(data_dir=str(data_dir), database_url=database_url, models=models, **extra)


async def timed(count: int, call: Callable[[int], Awaitable[object]]) -> list[int]:
    """ns per call of ``call(i)``, each timed on its own, after ``WARMUP`` untimed calls."""
    for index in range(WARMUP):
        await call(index)
    samples: list[int] = []
    clock = time.perf_counter_ns
    for index in range(count):
        started = clock()
        await call(index)
        samples.append(clock() - started)
    return samples


@dataclass(frozen=True)
class PerCall:
    rows: list[list[str]]
    flushed_rows: int
    flush_s: float


async def per_call(settings: Settings, count: int) -> PerCall:
    database = Database(settings.effective_database_url)
    upstream_http = UpstreamHTTP()
    registry = ModelRegistry.from_settings(settings, upstream_http)
    try:
        await database.upgrade()
        [deployment] = [d for d in registry.router.deployments(GROUP)]
        route = RouteInfo(group=GROUP, deployment=deployment.id, attempts=1)
        usage = Usage(412, 128)
        ctx = RequestContext(tenant="key:bench", request_id=uuid.uuid4().hex, api_key="key:bench")
        config = deployment.config
        rows: list[list[str]] = []
        flushed_rows, flush_s = 0, 0.0
        # Fresh ledgers (writer not started) so that no write happens while a call is timed; the
        # buffer stays below max_pending, so record() never waits. Journaled as the app does it.
        journal_dir = journal_dir_for(settings)
        ledger = UsageLedger(database, settings.usage, journal_dir=journal_dir)
        accounting = Accounting(registry, cache=None, ledger=ledger)

        async def charge(_: int) -> None:
            await accounting.charge(ctx, route, accounting.bill(route, usage, "miss"), "miss", 12.5)

        rows.append(us_row("Accounting.charge, ledger on (the steps below)", await timed(count, charge)))
        started = time.perf_counter()
        flushed_rows = ledger.pending
        await ledger.flush()
        flush_s = time.perf_counter() - started
        unledgered = Accounting(registry, cache=None, ledger=None)

        async def charge_off(_: int) -> None:
            await unledgered.charge(ctx, route, unledgered.bill(route, usage, "miss"), "miss", 12.5)

        rows.append(us_row("Accounting.charge, ledger off (pricing only)", await timed(count, charge_off)))

        async def lookup(_: int) -> None:
            registry.deployment_config(route.deployment)

        rows.append(
            us_row(
                f"step: registry.deployment_config ({settings_groups(settings)} groups)",
                await timed(count, lookup),
            )
        )

        async def price(_: int) -> None:
            cost_usd(config, usage.prompt_tokens, usage.completion_tokens)

        rows.append(us_row("step: pricing.cost_usd (built-in table)", await timed(count, price)))
        cost = cost_usd(config, usage.prompt_tokens, usage.completion_tokens)

        async def build(_: int) -> None:
            UsageRecord(
                request_id=ctx.request_id,
                api_key=ctx.api_key,
                model=GROUP,
                deployment=route.deployment,
                provider=config.provider,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost_usd=cost,
                cache_status="miss",
                latency_ms=12.5,
                tokens_estimated=False,
            )

        rows.append(
            us_row("step: UsageRecord(...) (incl. its created_at and entry_id)", await timed(count, build))
        )
        record = UsageRecord(
            request_id=ctx.request_id,
            model=GROUP,
            deployment=route.deployment,
            provider="openai",
            prompt_tokens=412,
            completion_tokens=128,
            cost_usd=Decimal("0.0001386"),
            latency_ms=12.5,
        )
        journaled = UsageLedger(database, settings.usage, journal_dir=journal_dir)
        rows.append(
            us_row(
                "step: UsageLedger.record, journal on (buffer + os.write)",
                await timed(count, lambda _: journaled.record(record)),
            )
        )
        bare = UsageLedger(database, settings.usage)
        rows.append(
            us_row(
                "step: UsageLedger.record, journal off (buffer only)",
                await timed(count, lambda _: bare.record(record)),
            )
        )
        # ``journaled`` and ``bare`` are not closed: their rows are one record again and again (one row
        # by entry id), not worth writing; their files go with the temporary data dir.
        await ledger.close()
        return PerCall(rows, flushed_rows, flush_s)
    finally:
        await registry.close()
        await upstream_http.aclose()
        await database.dispose()


def settings_groups(settings: Settings) -> int:
    return len({model.name for model in settings.models})


# -- (b) request latency, ledger on vs off ----------------------------------------------------------


@dataclass
class Latencies:
    on: list[float]
    off: list[float]


async def request_latency(settings: Settings, rounds: int, block: int) -> tuple[dict[str, Latencies], int]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        ledger_on = services
        assert services.usage is not None, "the app builds a ledger"
        cache = services.chat.accounting.cache
        assert cache is not None, "the exact cache is on"
        unledgered = copy.copy(services.chat.accounting)
        unledgered.ledger = None  # the same pipeline (cache, admission, metrics) without the ledger
        off_chat = services.chat.with_accounting(unledgered)
        ledger_off = replace(services, chat=off_chat)
        before = sum(row.requests for row in await services.usage.report())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
            bodies: dict[str, dict[str, Any]] = {
                "exact cache hit": {"max_tokens": 16},
                "1-token generation, cache skipped": {
                    "max_tokens": 1,
                    "cache": {"no-cache": True, "no-store": True},
                },
            }
            expected = {"exact cache hit": "hit", "1-token generation, cache skipped": "miss"}
            results: dict[str, Latencies] = {}
            for name, extra in bodies.items():
                body = {"messages": [{"role": "user", "content": "Hello!"}], "temperature": 0, **extra}

                async def send(
                    count: int, body: dict[str, Any] = body, want: str = expected[name]
                ) -> list[float]:
                    samples: list[float] = []
                    for _ in range(count):
                        started = time.perf_counter()
                        response = await client.post("/v1/chat/completions", json=body)
                        samples.append((time.perf_counter() - started) * 1000)
                        if response.status_code != 200 or response.headers["x-llmserve-cache"] != want:
                            raise RuntimeError(
                                f"wanted a {want}: {response.status_code} {response.headers} {response.text}"
                            )
                    return samples

                latencies = Latencies([], [])
                await client.post("/v1/chat/completions", json=body)  # a miss: stores the answer to replay
                for services_now in (ledger_on, ledger_off):  # warm up
                    app.state.services = services_now
                    await send(max(50, block))
                for round_index in range(rounds):
                    order = [(ledger_on, latencies.on), (ledger_off, latencies.off)]
                    for services_now, samples in order if round_index % 2 == 0 else order[::-1]:
                        app.state.services = services_now
                        samples.extend(await send(block))
                results[name] = latencies
            app.state.services = ledger_on
        recorded = sum(row.requests for row in await services.usage.report()) - before
    return results, recorded


# -- main -------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def throwaway_postgres(admin_url: str) -> AsyncIterator[str]:
    """A database of this run on the server of ``admin_url``, dropped at the end."""
    name = f"llmserve_bench_{uuid.uuid4().hex[:12]}"

    async def execute(statement: str) -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    await execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main_async(args: argparse.Namespace, workdir: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        database_url: str | None = None
        if args.postgres:
            database_url = await stack.enter_async_context(throwaway_postgres(args.postgres))
        shown = make_url(database_url).render_as_string(hide_password=True) if database_url else None
        print(f"database: {shown or sqlite_url_for(workdir / 'a')}")
        if not args.skip_calls:
            settings = settings_for(workdir / "a", database_url, args.groups)
            result = await per_call(settings, args.calls)
            print(f"\n## (a) One ledger row on the request path: {args.calls:,} calls each, µs per call\n")
            print(table(["step", "calls", "p50 µs", "p99 µs", "mean µs"], result.rows))
            per_row = result.flush_s / max(1, result.flushed_rows) * 1e6
            print(
                f"\nWriting the {result.flushed_rows:,} buffered rows (flush(), batches of "
                f"{settings.usage.batch_size}): {result.flush_s:.2f} s, {per_row:.1f} µs per row"
            )
        if not args.skip_requests:
            settings = load_settings(
                data_dir=str(workdir / "b"), database_url=database_url, cache={"exact": {"enabled": True}}
            )
            results, recorded = await request_latency(settings, args.rounds, args.block)
            total = args.rounds * args.block
            print(f"\n## (b) Request latency on the ASGI app, ledger on vs off: {total} requests each, ms\n")
            rows: list[list[str]] = []
            for name, latencies in results.items():
                for label, samples in (("on", latencies.on), ("off", latencies.off)):
                    rows.append(
                        [
                            name,
                            label,
                            f"{statistics.median(samples):.3f}",
                            f"{percentile(samples, 0.99):.3f}",
                            f"{statistics.fmean(samples):.3f}",
                        ]
                    )
                p50 = statistics.median(latencies.on) - statistics.median(latencies.off)
                p99 = percentile(latencies.on, 0.99) - percentile(latencies.off, 0.99)
                mean = statistics.fmean(latencies.on) - statistics.fmean(latencies.off)
                rows.append([name, "on − off", f"{p50:+.3f}", f"{p99:+.3f}", f"{mean:+.3f}"])
            print(table(["request", "ledger", "p50 ms", "p99 ms", "mean ms"], rows, text_columns=2))
            print(f"\nrows the ledger-on requests left in the ledger (warm-ups included): {recorded:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=50_000, help="timed calls per step in (a)")
    parser.add_argument("--groups", type=int, default=10, help="model groups in the registry of (a)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds in (b)")
    parser.add_argument("--block", type=int, default=50, help="requests per round and setting in (b)")
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="use a throwaway PostgreSQL database")
    parser.add_argument("--skip-calls", action="store_true")
    parser.add_argument("--skip-requests", action="store_true")
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="llmserve-ledger-bench-") as workdir:
        asyncio.run(main_async(args, Path(workdir)))


if __name__ == "__main__":
    main()
