"""The /health probe of the hostile-client tier, run as its own process while an attack runs.

    python -m tests.e2e.hostile.probe URL SECONDS PID

Polls ``URL/health`` over one keep-alive connection every 10 ms for ``SECONDS`` and samples the
server's VmRSS (``/proc/PID/status``) as it goes; prints one JSON line: the latencies (seconds, a
failed or non-200 answer counts as the time it took plus a flag) and the highest RSS seen (KiB).

A process of its own so that the attack's threads, which hold the test process's GIL while they
build and send bodies, cannot delay the probe and be blamed on the server.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx

INTERVAL_S = 0.01
TIMEOUT_S = 10.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def probe(url: str, seconds: float, pid: int) -> dict[str, object]:
    latencies: list[float] = []
    failures = 0
    peak = rss_kib(pid)
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                ok = client.get("/health").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            failures += not ok
            peak = max(peak, rss_kib(pid))
            time.sleep(INTERVAL_S)
    return {"latencies": latencies, "failures": failures, "peak_rss_kib": peak}


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))))
