"""What the llmserve gateway adds to a request's latency, against a direct call to the same upstream.

    python benchmarks/gateway_overhead.py                  # defaults: about 80 s
    python benchmarks/gateway_overhead.py --requests 2000 --concurrency 1,32 --repeats 3

Three processes on loopback:

- the upstream: the raw asyncio HTTP/1.1 keep-alive server of ``upstream_http_client.py`` (uvloop when
  installed) in its own process, answering ``POST /v1/chat/completions`` with a canned OpenAI
  ``chat.completion`` (about 600 bytes) or, for ``"stream":true``, 20 ``chat.completion.chunk``
  events and ``data: [DONE]``. It answers in microseconds, so what is measured is HTTP and the gateway;
- the gateway: ``python -m llmserve serve --config ... --port ...`` with one ``provider: openai``
  deployment pointing at that upstream, logging to a temporary file (its access log included, as in
  production);
- this process: an aiohttp client on uvloop with one warm pool, sending the same non-streamed or
  streamed chat request either straight to the upstream ("direct") or to llmserve ("gateway").

For each concurrency C and mode, each path runs ``--repeats`` times (the paths' order alternated), each
run warmed up at concurrency C and then timed over N requests from C workers. Latency is the client's
wall time per request to the end of the body; for a stream also the time to the first ``data:`` line
(TTFB). Percentiles are over every request of the repeats, req/s the median over the runs.

The added latency is gateway minus direct at p50 and p99, next to the median of the gateway's own
``x-llmserve-overhead-ms`` header (its wall time minus the time waiting on the upstream; for a stream,
up to the first event, when the headers go out). CPU per request is counted for all three processes:
on a small machine they compete for the same cores, so at high concurrency part of the "overhead" is
the client and the upstream waiting for a core the gateway holds, and the other way round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from the root

from benchmarks.upstream_http_client import HAVE_UVLOOP, _process_cpu_s, _run, _serve

GROUP = "bench"
PATHS = ("direct", "gateway")
MODES = ("json", "stream")
READY_TIMEOUT_S = 120.0

# -- processes --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CannedUpstream:
    url: str
    pid: int
    _accepted: Any  # a multiprocessing Value('q') the server process counts its connections in

    @property
    def accepted(self) -> int:
        return int(self._accepted.value)


@contextlib.contextmanager
def canned_upstream() -> Iterator[CannedUpstream]:
    """The raw asyncio upstream of ``upstream_http_client.py``, in a process of its own."""
    context = multiprocessing.get_context("spawn")
    accepted = context.Value("q", 0, lock=False)
    port_in, port_out = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(port_out, accepted), daemon=True, name="upstream")
    process.start()
    try:
        if not port_in.poll(30):
            raise RuntimeError("the upstream did not start")
        assert process.pid is not None
        yield CannedUpstream(f"http://127.0.0.1:{port_in.recv()}", process.pid, accepted)
    finally:
        process.terminate()
        process.join(10)


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def openai_deployment(deployment_id: str, api_base: str, **extra: Any) -> dict[str, Any]:
    """One ``models:`` entry of the group ``GROUP`` (or ``name=`` in ``extra``) for an OpenAI upstream."""
    return {
        "name": GROUP,
        "id": deployment_id,
        "provider": "openai",
        "api_base": api_base,
        "model": "gpt-4o-mini",
        "api_key": "sk-bench",
        **extra,
    }


@contextlib.contextmanager
def running_gateway(config: Mapping[str, Any], workdir: Path) -> Iterator[Gateway]:
    """``python -m llmserve serve --config ... --port ...`` in its own process, ready, stopped after.

    Its ``LLMSERVE_*`` environment is cleared so the shell's settings do not leak in; stdout and stderr
    go to a log file in ``workdir``.
    """
    port = free_port()
    config_path = workdir / f"llmserve-{port}.yaml"
    config_path.write_text(yaml.safe_dump(dict(config)))
    log_path = workdir / f"llmserve-{port}.log"
    command = [
        sys.executable,
        "-m",
        "llmserve",
        "serve",
        "--config",
        str(config_path),
        "--port",
        str(port),
        "--data-dir",
        str(workdir / f"data-{port}"),
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLMSERVE_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    gateway = Gateway(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_ready(gateway)
        yield gateway
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(gateway: Gateway) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=5, trust_env=False) as client:
        while time.monotonic() < deadline:
            if gateway.process.poll() is not None:
                raise RuntimeError(
                    f"llmserve exited with {gateway.process.returncode}:\n{gateway.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{gateway.url}/ready").status_code == 200:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"llmserve not ready after {READY_TIMEOUT_S:.0f} s:\n{gateway.log_tail()}")


# -- statistics -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile (``values`` need not be sorted); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> str:
    """A GitHub pipe table; columns from ``right_from`` on are right-aligned."""
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    versions = ", ".join(f"{name} {version(name)}" for name in ("aiohttp", "fastapi", "uvicorn"))
    loop = f"uvloop {version('uvloop')}" if HAVE_UVLOOP else "asyncio loop"
    return (
        f"{platform.machine()} ({cpu}), {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{versions}, {loop}, load average {os.getloadavg()[0]:.2f}"
    )


# -- the client -------------------------------------------------------------------------------------


def request_body(model: str, stream: bool) -> bytes:
    return orjson.dumps(
        {
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What does a connection pool do?"},
            ],
            "max_tokens": 64,
            "temperature": 0.2,
            "stream": stream,
        }
    )


HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


@dataclass
class Sample:
    latency_s: float
    ttfb_s: float | None  # streams: to the first `data:` line
    overhead_ms: float | None  # x-llmserve-overhead-ms, gateway only


class Target:
    """One path: a URL and the two request bodies (the model name differs: the gateway needs its group)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, model: str) -> None:
        self.session = session
        self.url = f"{base_url}/v1/chat/completions"
        self.bodies = {False: request_body(model, False), True: request_body(model, True)}

    async def call(self, stream: bool) -> Sample:
        started = time.perf_counter()
        ttfb: float | None = None
        async with self.session.post(self.url, data=self.bodies[stream], headers=HEADERS) as response:
            if response.status != 200:
                raise RuntimeError(f"{self.url}: status {response.status}: {(await response.read())[:300]!r}")
            overhead = response.headers.get("x-llmserve-overhead-ms")
            if not stream:
                if orjson.loads(await response.read())["object"] != "chat.completion":
                    raise RuntimeError("unexpected answer")
            else:
                done = False
                async for line in response.content:  # to the end of the body: the connection is reused
                    if not line.startswith(b"data: "):
                        continue
                    if ttfb is None:
                        ttfb = time.perf_counter() - started
                    payload = line[6:].rstrip(b"\r\n")
                    if payload == b"[DONE]":
                        done = True
                    elif b'"error"' in payload[:12]:
                        raise RuntimeError(f"error event: {payload[:300]!r}")
                    else:
                        orjson.loads(payload)
                if not done:
                    raise RuntimeError("stream without [DONE]")
        return Sample(time.perf_counter() - started, ttfb, None if overhead is None else float(overhead))


async def drive(target: Target, stream: bool, requests: int, concurrency: int) -> list[Sample]:
    samples: list[Sample] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            samples.append(await target.call(stream))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def new_session() -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=60)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0), timeout=timeout, trust_env=False
    )


# -- measuring --------------------------------------------------------------------------------------


@dataclass
class Run:
    samples: list[Sample]
    wall_s: float
    client_cpu_s: float
    gateway_cpu_s: float
    upstream_cpu_s: float
    new_upstream_connections: int
    # The gateway's own view of the upstream call (/admin/deployments ``ewma_latency_ms``) after the run.
    gateway_seen_upstream_ms: float | None = None


@dataclass
class Cell:
    runs: list[Run] = field(default_factory=list)

    @property
    def samples(self) -> list[Sample]:
        return [sample for run in self.runs for sample in run.samples]

    @property
    def requests(self) -> int:
        return sum(len(run.samples) for run in self.runs)

    @property
    def rps(self) -> float:
        return statistics.median(len(run.samples) / run.wall_s for run in self.runs)

    def latency_ms(self, quantile: float) -> float:
        return percentile([s.latency_s for s in self.samples], quantile) * 1e3

    def ttfb_ms(self, quantile: float) -> float:
        return percentile([s.ttfb_s for s in self.samples if s.ttfb_s is not None], quantile) * 1e3

    def overhead_ms(self, quantile: float) -> float:
        return percentile([s.overhead_ms for s in self.samples if s.overhead_ms is not None], quantile)

    def cpu_us(self, which: str) -> float:
        total = sum(getattr(run, f"{which}_cpu_s") for run in self.runs)
        return float(total) / self.requests * 1e6

    @property
    def cores_busy(self) -> float:
        cpu = sum(run.client_cpu_s + run.gateway_cpu_s + run.upstream_cpu_s for run in self.runs)
        return cpu / sum(run.wall_s for run in self.runs)

    @property
    def new_connections(self) -> int:
        return sum(run.new_upstream_connections for run in self.runs)

    @property
    def gateway_seen_upstream_ms(self) -> float:
        seen = [run.gateway_seen_upstream_ms for run in self.runs if run.gateway_seen_upstream_ms is not None]
        return statistics.median(seen) if seen else float("nan")


async def upstream_ewma_ms(session: aiohttp.ClientSession, gateway_url: str) -> float | None:
    async with session.get(f"{gateway_url}/admin/deployments") as response:
        rows = (await response.json())["data"]
    value = rows[0]["ewma_latency_ms"]
    return None if value is None else float(value)


async def measure(
    upstream: CannedUpstream,
    gateway: Gateway,
    modes: Sequence[str],
    concurrencies: Sequence[int],
    requests: int,
    repeats: int,
    log: Any,
) -> dict[tuple[str, int, str], Cell]:
    cells: dict[tuple[str, int, str], Cell] = {}
    started = time.perf_counter()

    def cpu_of(pid: int) -> float:
        return _process_cpu_s(pid) or 0.0

    async with new_session() as session:
        targets = {
            "direct": Target(session, upstream.url, "gpt-4o-mini"),
            "gateway": Target(session, gateway.url, GROUP),
        }
        for concurrency in concurrencies:
            for mode in modes:
                stream = mode == "stream"
                for repeat in range(repeats):
                    order = PATHS if repeat % 2 == 0 else PATHS[::-1]
                    for path in order:
                        target = targets[path]
                        await drive(target, stream, max(4 * concurrency, 100), concurrency)  # warm-up
                        accepted = upstream.accepted
                        gateway_cpu, upstream_cpu = cpu_of(gateway.pid), cpu_of(upstream.pid)
                        client_cpu = time.process_time()
                        start = time.perf_counter()
                        samples = await drive(target, stream, requests, concurrency)
                        wall = time.perf_counter() - start
                        run = Run(
                            samples,
                            wall,
                            time.process_time() - client_cpu,
                            cpu_of(gateway.pid) - gateway_cpu,
                            cpu_of(upstream.pid) - upstream_cpu,
                            upstream.accepted - accepted,
                        )
                        if path == "gateway":
                            run.gateway_seen_upstream_ms = await upstream_ewma_ms(session, gateway.url)
                        cells.setdefault((mode, concurrency, path), Cell()).runs.append(run)
                log(f"  {mode} C={concurrency} done ({time.perf_counter() - started:.0f} s)")
    return cells


def report(
    cells: Mapping[tuple[str, int, str], Cell], modes: Sequence[str], concurrencies: Sequence[int]
) -> str:
    rows: list[list[str]] = []
    for concurrency in concurrencies:
        for mode in modes:
            for path in PATHS:
                cell = cells[(mode, concurrency, path)]
                is_stream = mode == "stream"
                rows.append(
                    [
                        mode,
                        str(concurrency),
                        path,
                        f"{cell.rps:,.0f}",
                        f"{cell.latency_ms(0.5):.2f}",
                        f"{cell.latency_ms(0.9):.2f}",
                        f"{cell.latency_ms(0.99):.2f}",
                        f"{cell.ttfb_ms(0.5):.2f}" if is_stream else "",
                        f"{cell.ttfb_ms(0.99):.2f}" if is_stream else "",
                        f"{cell.cpu_us('client'):,.0f}",
                        f"{cell.cpu_us('gateway'):,.0f}" if path == "gateway" else "-",
                        f"{cell.cpu_us('upstream'):,.0f}",
                        f"{cell.cores_busy:.2f}",
                        str(cell.new_connections),
                    ]
                )
    header = [
        "mode",
        "C",
        "path",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "TTFB p50",
        "TTFB p99",
        "client µs/req",
        "gateway µs/req",
        "upstream µs/req",
        "cores busy",
        "new upstream conns",
    ]
    first = markdown_table(header, rows, right_from=3)

    added: list[list[str]] = []
    for concurrency in concurrencies:
        for mode in modes:
            direct, gate = cells[(mode, concurrency, "direct")], cells[(mode, concurrency, "gateway")]
            is_stream = mode == "stream"
            added.append(
                [
                    mode,
                    str(concurrency),
                    f"{gate.latency_ms(0.5) - direct.latency_ms(0.5):+.2f}",
                    f"{gate.latency_ms(0.99) - direct.latency_ms(0.99):+.2f}",
                    f"{gate.ttfb_ms(0.5) - direct.ttfb_ms(0.5):+.2f}" if is_stream else "",
                    f"{gate.ttfb_ms(0.99) - direct.ttfb_ms(0.99):+.2f}" if is_stream else "",
                    f"{gate.overhead_ms(0.5):.2f}",
                    f"{gate.overhead_ms(0.99):.2f}",
                    f"{gate.gateway_seen_upstream_ms:.2f}",
                    f"{gate.rps / direct.rps:.3f}×",
                ]
            )
    header = [
        "mode",
        "C",
        "Δ p50 ms",
        "Δ p99 ms",
        "Δ TTFB p50",
        "Δ TTFB p99",
        "x-llmserve-overhead-ms median",
        "header p99",
        "upstream call as llmserve sees it (EWMA)",
        "req/s gateway / direct",
    ]
    second = markdown_table(header, added, right_from=2)
    return f"{first}\n\nGateway minus direct (ms):\n\n{second}"


def _parse_concurrency(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per run (N)")
    parser.add_argument("--concurrency", type=_parse_concurrency, default=[1, 32], help="e.g. 1,32")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path, mode and concurrency")
    parser.add_argument("--modes", default="json,stream", help="json, stream or both")
    args = parser.parse_args(argv)
    modes = [mode for mode in args.modes.split(",") if mode]
    if not modes or any(mode not in MODES for mode in modes):
        parser.error("--modes takes json and/or stream")

    def log(line: str) -> None:
        print(line, flush=True)

    log(machine_line())
    log(f"N={args.requests} per run, repeats={args.repeats}, concurrency {args.concurrency}, modes {modes}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmserve-overhead-") as tmp, canned_upstream() as upstream:
        config = {"models": [openai_deployment("bench-1", f"{upstream.url}/v1")]}
        with running_gateway(config, Path(tmp)) as gateway:
            log(f"upstream {upstream.url} (pid {upstream.pid}), llmserve {gateway.url} (pid {gateway.pid})")
            try:
                measure_all = measure(
                    upstream, gateway, modes, args.concurrency, args.requests, args.repeats, log
                )
                cells = _run(measure_all)
            except BaseException:
                log(f"llmserve log tail:\n{gateway.log_tail()}")
                raise
    log(f"total {time.perf_counter() - began:.0f} s\n")
    log(report(cells, modes, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
