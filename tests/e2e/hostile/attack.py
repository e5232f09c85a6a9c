"""Run an attack against the tier's server while the /health probe (probe.py) measures it.

``under_attack`` starts the attackers (each a function of the deadline, in its own thread), lets them
get going, runs the probe process for ``seconds``, then stops them and reports /health's p50 / p99 /
max and the server's RSS growth (peak during the attack over the level just before it). ``check``
asserts the tier's bounds: p99 under 250 ms, growth under 200 MB, every probe answered 200.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.hostile.probe import rss_kib
from tests.live_server import LiveServer

REPO = Path(__file__).resolve().parents[3]
HEALTH_P99_BOUND_S = 0.250
RSS_GROWTH_BOUND_MIB = 200.0
RAMP_S = 1.0  # the attack runs this long before the probe starts measuring

Attacker = Callable[[float], Any]  # gets the deadline (time.monotonic()); returns what the test checks


@dataclass
class AttackReport:
    name: str
    latencies: list[float]
    failures: int
    rss_growth_mib: float
    results: list[Any]  # what each attacker returned, in order

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def line(self) -> str:
        return (
            f"hostile {self.name}: /health n={len(self.latencies)} p50={self.quantile(0.5) * 1000:.1f} ms "
            f"p99={self.quantile(0.99) * 1000:.1f} ms max={max(self.latencies) * 1000:.1f} ms "
            f"failures={self.failures}; RSS growth {self.rss_growth_mib:+.1f} MiB"
        )

    def check(self) -> None:
        assert len(self.latencies) >= 50, self.line()  # a probe that barely ran measured nothing
        assert self.failures == 0, self.line()
        assert self.quantile(0.99) < HEALTH_P99_BOUND_S, self.line()
        assert self.rss_growth_mib < RSS_GROWTH_BOUND_MIB, self.line()


def under_attack(
    server: LiveServer, name: str, seconds: float, attackers: Sequence[Attacker]
) -> AttackReport:
    pid = server.process.pid
    before = rss_kib(pid)
    deadline = time.monotonic() + RAMP_S + seconds
    with ThreadPoolExecutor(len(attackers), thread_name_prefix=f"attack-{name}") as pool:
        futures: list[Future[Any]] = [pool.submit(attacker, deadline) for attacker in attackers]
        time.sleep(RAMP_S)
        measured = _probe(server.url, seconds, pid)
        results = [future.result(timeout=seconds + 60) for future in futures]
    report = AttackReport(
        name,
        measured["latencies"],
        measured["failures"],
        (measured["peak_rss_kib"] - before) / 1024,
        results,
    )
    print(report.line())  # the figures docs/benchmarks.md records (pytest -s shows them)
    return report


def _probe(url: str, seconds: float, pid: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.e2e.hostile.probe", url, str(seconds), str(pid)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, timeout=seconds + 60, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result
