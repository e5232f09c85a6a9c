"""Metrics across several worker processes (``llmserve serve --workers N``).

prometheus-client's multiprocess mode: the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the workers start, each worker's samples live in mmap files there, and a scrape of
any worker sums them all. A scrape-time collector would see only the process that answers, so in
this mode every worker pushes its own state into live gauges (summed or maxed over the live workers)
at the start and end of each request and before a scrape it answers: a worker's share is as fresh as
its last request. Files of workers that died are dropped from those gauges at the next scrape.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from llmserve.observability.metrics_state import STATE_GAUGES

logger = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    """The shared directory when this process records in multiprocess mode, else None."""
    path = os.environ.get(MULTIPROC_DIR_ENV)
    if not path:
        return None
    # prometheus-client picks its value store when first imported: a variable set later does nothing.
    if not getattr(values.ValueClass, "_multiprocess", False):
        logger.warning(
            "%s is set but prometheus_client was imported before it: metrics stay per process",
            MULTIPROC_DIR_ENV,
        )
        return None
    return path


def all_workers_registry(path: str) -> CollectorRegistry:
    """What a scrape renders: the samples of every worker that records into ``path``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


class LiveStateGauges:
    """This worker's share of the state gauges, on ``registry``; combined over the live workers."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._gauges = {
            spec.name: Gauge(
                spec.name,
                spec.documentation,
                [spec.label],
                registry=registry,
                multiprocess_mode=spec.multiprocess_mode,
            )
            for spec in STATE_GAUGES
        }
        self._pushed: dict[tuple[str, str], float] = {}  # what this worker last wrote

    def push(self, state: Mapping[str, Mapping[str, float]]) -> None:
        pushed = self._pushed
        for name, series in state.items():
            for label, value in series.items():
                key = (name, label)
                if pushed.get(key) != value:  # a write is a locked mmap store: only on change
                    self._gauges[name].labels(label).set(value)
                    pushed[key] = value


def forget_dead_workers(path: str) -> None:
    """Drop the live gauges of workers that exited (uvicorn restarts crashed ones with new pids)."""
    pids = {int(m.group(1)) for f in Path(path).iterdir() if (m := _LIVE_GAUGE_FILE.search(f.name))}
    for pid in pids:
        if pid != os.getpid() and not _alive(pid):
            with contextlib.suppress(OSError):
                mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
