"""``llmserve worker``: a process that runs queued async jobs and batch lines, and serves no HTTP.

It builds the same app as ``llmserve serve`` from the same config (models, limits, keys, cache,
ledger) and runs queued requests through it in process, so a line answered by a worker is exactly
what the server would have answered. Start as many as you like, on any machine that reaches the
database and the broker; SIGTERM or Ctrl-C hands running units back to the queue before exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated, Any

import typer

from llmserve.cli.common import ConfigOption, DataDirOption, err, load_or_exit, settings_inputs
from llmserve.config import Settings

ConcurrencyOption = Annotated[
    int | None, typer.Option("--concurrency", help="Units run at once (default: jobs.worker_concurrency)")
]


def worker(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    concurrency: ConcurrencyOption = None,
) -> None:
    """Run queued async jobs and batch lines (scale out with a Redis or RabbitMQ broker)."""
    from llmserve.observability.logging import configure_logging

    settings = load_or_exit(settings_inputs(config, data_dir=data_dir))
    jobs: dict[str, Any] = {"run_in_server": True}
    if concurrency is not None:
        jobs["worker_concurrency"] = concurrency
    settings = settings.model_copy(update={"jobs": settings.jobs.model_copy(update=jobs)})
    configure_logging(settings.server.log_level, settings.observability.log_format)
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    from llmserve.app import create_app

    app = create_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows has no add_signal_handler
            loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(NotImplementedError, AttributeError):  # no SIGUSR1 on Windows
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    async with app.router.lifespan_context(app):
        err.print(
            f"llmserve worker: {settings.jobs.broker} broker, up to {settings.jobs.worker_concurrency} "
            "units at once; Ctrl-C to stop",
            highlight=False,
        )
        await stop.wait()


def _dump_tasks() -> None:
    """SIGUSR1: print what every task is waiting on (for a worker that looks stuck)."""
    import sys

    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}", file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)
