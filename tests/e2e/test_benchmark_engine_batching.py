"""benchmarks/engine_batching.py keeps working: a tiny run of every mode writes its table, JSON and plot.

Not in the unit tier: on a machine without matplotlib's font cache, drawing the plot runs fc-list
in a subprocess (the unit tier forbids subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from benchmarks.engine_batching import main

pytestmark = pytest.mark.e2e


async def test_a_tiny_benchmark_run_measures_every_mode_and_writes_its_results(tmp_path: Path) -> None:
    results_path, plot_path = tmp_path / "results.json", tmp_path / "plot.png"
    argv = ["--models", "tiny-chat", "--concurrency", "2", "--rounds", "1", "--max-tokens", "4"]
    argv += ["--repeats", "1", "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        results = await main([*argv, "--json", str(results_path), "--plot", str(plot_path)])
    finally:
        torch.set_num_threads(threads)

    assert [r.mode for r in results] == ["batched", "one-at-a-time", "hf-generate", "hf-generate_batch"]
    assert all(r.tokens == 4 * r.requests and r.tokens_per_s > 0 for r in results)
    assert all(r.greedy_equal for r in results[:2])
    assert len(json.loads(results_path.read_text())) == len(results)
    assert plot_path.read_bytes().startswith(b"\x89PNG")
