"""The gateway benchmark keeps running: a tiny configuration with no nginx, wrk or LiteLLM.

It starts the repo's canned upstream and a real ``llmserve serve``, drives both with the aiohttp load
generator in its own process for half a second per cell, and checks what a reader of the benchmark
relies on: a table row per target with no errors, the added latency next to the direct call, and
the plot.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks import gateway_vs_litellm

pytestmark = pytest.mark.e2e


def test_gateway_benchmark_runs_end_to_end_and_reports_every_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "gateway.png"
    argv = ["--upstream", "canned", "--loadgen", "python", "--targets", "direct,llmserve"]
    argv += ["--duration", "0.5", "--concurrency", "2", "--plot", str(plot)]

    assert gateway_vs_litellm.main(argv) == 0  # 0: no request failed

    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    by_target = {(row.split("|")[1].strip(), row.split("|")[3].strip()): row for row in rows[1:]}
    assert set(by_target) == {(m, t) for m in ("json", "stream") for t in ("direct", "llmserve")}
    for (_, target), row in by_target.items():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[3].replace(",", "")) > 0  # req/s
        assert cells[-1] == "0"  # errors
        if target == "llmserve":
            assert cells[7].startswith(("+", "-"))  # added p50 over the direct call
    assert plot.stat().st_size > 10_000
