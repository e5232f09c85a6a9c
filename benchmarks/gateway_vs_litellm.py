"""llmserve's gateway against LiteLLM's proxy, both in front of the same fast upstream.

    python benchmarks/gateway_vs_litellm.py                       # nginx + wrk + LiteLLM: about 5 min
    python benchmarks/gateway_vs_litellm.py --duration 5 --targets direct,llmserve
    python benchmarks/gateway_vs_litellm.py --upstream canned --loadgen python   # no nginx, no wrk

What runs, each in its own process on loopback:

- the upstream: nginx (``--upstream nginx``, a generated config in a temporary directory, one worker,
  not daemonised) answering every ``POST .../chat/completions`` with a fixed ``chat.completion`` body
  under ``/json/v1`` and a fixed SSE body (20 ``chat.completion.chunk`` events and ``data: [DONE]``)
  under ``/stream/v1``; or the raw asyncio server of ``upstream_http_client.py`` (``--upstream canned``);
- the targets: ``direct`` (the upstream itself), ``llmserve`` (``python -m llmserve serve``, one worker,
  default settings, access log included), ``llmserve-w2`` (``server.workers: 2``) and ``litellm``
  (``litellm --config ... --num_workers 1``, release ``LITELLM_VERSION`` in a venv of its own under
  ``~/.cache/llmserve-bench``, made on first use). Both gateways get one model per body:
  ``bench-json`` and ``bench-stream``, the same upstream URLs;
- the load generator: wrk (``--loadgen wrk``) with a Lua script that counts every answer that is not a
  200 with the expected body (``"chat.completion"``, or ``data: [DONE]`` and no error event); or an
  aiohttp client in a spawned process (``--loadgen python``), which checks the same things.

For each mode (json, stream) and concurrency C, every target is warmed up and then loaded for
``--duration`` seconds by C connections; the targets' order alternates between repeats and the median
run is kept. The tables show requests/s, latency percentiles, errors, the latency added over ``direct``
and each gateway's requests/s as a multiple of LiteLLM's. ``--plot`` writes a PNG of the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from the root

from benchmarks.gateway_overhead import (
    HEADERS,
    canned_upstream,
    free_port,
    machine_line,
    markdown_table,
    openai_deployment,
    percentile,
    request_body,
    running_gateway,
)
from benchmarks.upstream_http_client import JSON_BODY, STREAM_EVENTS, _chunk, _run

LITELLM_VERSION = "1.80.0"  # litellm[proxy], released 2025-11; pinned so reruns compare
LITELLM_VENV = Path.home() / ".cache" / "llmserve-bench" / "litellm-venv"
MODES = ("json", "stream")
TARGETS = ("direct", "llmserve", "llmserve-w2", "litellm")
STREAM_BODY = b"".join(b"data: " + _chunk(i) + b"\n\n" for i in range(STREAM_EVENTS)) + b"data: [DONE]\n\n"
READY_TIMEOUT_S = 120.0


# -- the upstream -----------------------------------------------------------------------------------


@dataclass
class Upstream:
    bases: dict[str, str]  # mode -> OpenAI api_base (".../v1")


NGINX_CONF = """\
worker_processes 1;
{user}
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        # A POST to a file is a 405; error_page turns it into the file (as a GET) with a 200.
        location = /json/v1/chat/completions {{ error_page 405 =200 /bodies/answer.json; return 405; }}
        location = /stream/v1/chat/completions {{ error_page 405 =200 /bodies/answer.sse; return 405; }}
        location /bodies/ {{
            internal;
            root {tmp};
            types {{ application/json json; text/event-stream sse; }}
            etag off;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_upstream() -> Iterator[Upstream]:
    """nginx in the foreground with a generated config, answering from two files."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="llmserve-nginx-") as tmp:
        (Path(tmp) / "bodies").mkdir()
        (Path(tmp) / "bodies" / "answer.json").write_bytes(JSON_BODY)
        (Path(tmp) / "bodies" / "answer.sse").write_bytes(STREAM_BODY)
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "", tmp=tmp, port=port))
        process = subprocess.Popen([binary, "-p", tmp, "-c", str(conf)], stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_http(f"{base}/json/v1/chat/completions", process, "POST")
            yield Upstream({"json": f"{base}/json/v1", "stream": f"{base}/stream/v1"})
        finally:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def any_upstream(kind: str) -> Iterator[Upstream]:
    if kind == "nginx":
        with nginx_upstream() as upstream:
            yield upstream
    else:  # one base: the canned server picks the answer from the body's "stream"
        with canned_upstream() as canned:
            yield Upstream({"json": f"{canned.url}/v1", "stream": f"{canned.url}/v1"})


def _wait_http(url: str, process: subprocess.Popen[Any], method: str = "GET") -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=5, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if client.request(method, url, content=b"{}").status_code == 200:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {READY_TIMEOUT_S:.0f} s")


# -- the gateways -----------------------------------------------------------------------------------


def llmserve_config(upstream: Upstream, workers: int) -> dict[str, Any]:
    models = [openai_deployment(f"bench-{m}", base, name=f"bench-{m}") for m, base in upstream.bases.items()]
    return {"models": models, "server": {"workers": workers}}


def litellm_binary() -> Path:
    """The pinned LiteLLM proxy in a venv of its own (made on first use: pip, about a minute)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    marker = LITELLM_VENV / f".litellm-{LITELLM_VERSION}"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"]
        subprocess.run(pip, check=True)
        marker.touch()
    return binary


@contextlib.contextmanager
def litellm_proxy(upstream: Upstream, workdir: Path) -> Iterator[str]:
    models = [
        {
            "model_name": f"bench-{mode}",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "sk-bench"},
        }
        for mode, base in upstream.bases.items()
    ]
    config = workdir / "litellm.yaml"
    config.write_text(yaml.safe_dump({"model_list": models}))
    port = free_port()
    # The bundled cost map instead of a download at start; LiteLLM's own logging at its default.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    command = [str(litellm_binary()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--num_workers", "1"]
    with (workdir / "litellm.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health/liveliness", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- load -------------------------------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
bad = 0
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, [==[{expect}]==], 1, true)
     or string.find(body, 'data: {{"error"', 1, true) then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("bad") end
  local e = summary.errors
  io.write(string.format('RESULT {{"requests": %d, "us": %d, "bad": %d, "socket": %d, ' ..
    '"p50": %d, "p90": %d, "p99": %d}}\\n', summary.requests, summary.duration, total,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99)))
end
"""


def expected(stream: bool) -> bytes:
    return b"data: [DONE]" if stream else b'"chat.completion"'


def wrk_load(url: str, body: bytes, stream: bool, concurrency: int, seconds: float, *, tmp: Path) -> Load:
    script = tmp / "bench.lua"
    script.write_text(WRK_SCRIPT.format(body=body.decode(), expect=expected(stream).decode()))
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result = orjson.loads(line.removeprefix("RESULT "))
    return Load(
        result["requests"],
        result["us"] / 1e6,
        result["bad"] + result["socket"],
        result["p50"] / 1e3,
        result["p90"] / 1e3,
        result["p99"] / 1e3,
    )


async def _python_load(url: str, body: bytes, stream: bool, concurrency: int, seconds: float) -> Load:
    latencies: list[float] = []
    errors = 0
    want = expected(stream)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal errors
            while (begun := time.perf_counter()) < deadline:
                async with session.post(url, data=body, headers=HEADERS) as response:
                    answer = await response.read()
                good = response.status == 200 and want in answer and b'data: {"error"' not in answer
                errors += not good
                latencies.append(time.perf_counter() - begun)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = [value * 1e3 for value in latencies]
    return Load(len(ms), elapsed, errors, percentile(ms, 0.5), percentile(ms, 0.9), percentile(ms, 0.99))


def python_load_in_process(url: str, body: bytes, stream: bool, concurrency: int, seconds: float) -> Load:
    return _run(_python_load(url, body, stream, concurrency, seconds))  # type: ignore[no-any-return]


Generate = Callable[[str, bytes, bool, int, float], Load]


@contextlib.contextmanager
def load_generator(kind: str, tmp: Path) -> Iterator[Generate]:
    """wrk, or the aiohttp generator in one spawned process (it must not share a GIL with anything
    it measures), kept for the whole run."""
    if kind == "wrk":
        yield functools.partial(wrk_load, tmp=tmp)
        return
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:

        def generate(url: str, body: bytes, stream: bool, concurrency: int, seconds: float) -> Load:
            return pool.submit(python_load_in_process, url, body, stream, concurrency, seconds).result()

        yield generate


# -- the run ----------------------------------------------------------------------------------------


Cells = dict[tuple[str, int, str], Load]  # (mode, C, target) -> the median run


def measure(
    urls: dict[str, str],
    modes: Sequence[str],
    concurrencies: Sequence[int],
    seconds: float,
    repeats: int,
    generate: Generate,
) -> Cells:
    cells: Cells = {}
    names = list(urls)
    for mode in modes:
        stream = mode == "stream"
        for concurrency in concurrencies:
            runs: dict[str, list[Load]] = {name: [] for name in names}
            for repeat in range(repeats):
                for name in names if repeat % 2 == 0 else names[::-1]:
                    model = "gpt-4o-mini" if name == "direct" else f"bench-{mode}"
                    base = urls[name] if name != "direct" else urls["direct"][mode == "stream"]
                    url = f"{base}/chat/completions" if name == "direct" else f"{base}/v1/chat/completions"
                    body = request_body(model, stream)
                    generate(url, body, stream, concurrency, min(2.0, seconds))  # warm-up
                    runs[name].append(generate(url, body, stream, concurrency, seconds))
            for name, loads in runs.items():
                middle = sorted(loads, key=lambda load: load.rps)[len(loads) // 2]
                middle.errors = sum(load.errors for load in loads)  # any error in any run counts
                cells[(mode, concurrency, name)] = middle
            print(f"  {mode} C={concurrency} done", flush=True)
    return cells


def report(cells: Cells, modes: Sequence[str], concurrencies: Sequence[int], names: Sequence[str]) -> str:
    rows: list[list[str]] = []
    for mode in modes:
        for concurrency in concurrencies:
            direct = cells.get((mode, concurrency, "direct"))
            litellm = cells.get((mode, concurrency, "litellm"))
            for name in names:
                load = cells[(mode, concurrency, name)]
                added = direct is not None and name != "direct"
                rows.append(
                    [
                        mode,
                        str(concurrency),
                        name,
                        f"{load.rps:,.0f}",
                        f"{load.p50_ms:.2f}",
                        f"{load.p90_ms:.2f}",
                        f"{load.p99_ms:.2f}",
                        f"{load.p50_ms - direct.p50_ms:+.2f}" if added and direct else "",
                        f"{load.p99_ms - direct.p99_ms:+.2f}" if added and direct else "",
                        f"{load.rps / litellm.rps:.1f}×" if litellm and name != "direct" else "",
                        str(load.errors),
                    ]
                )
    header = ["mode", "C", "target", "req/s", "p50 ms", "p90 ms", "p99 ms"]
    header += ["added p50 ms", "added p99 ms", "req/s vs litellm", "errors"]
    return markdown_table(header, rows, right_from=3)


def plot(
    cells: Cells, modes: Sequence[str], concurrencies: Sequence[int], names: Sequence[str], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(concurrencies), figsize=(5 * len(concurrencies), 4), squeeze=False)
    width = 0.8 / len(names)
    for axis, concurrency in zip(axes[0], concurrencies, strict=True):
        for offset, name in enumerate(names):
            values = [cells[(mode, concurrency, name)].rps for mode in modes]
            positions = [i + (offset - (len(names) - 1) / 2) * width for i in range(len(modes))]
            bars = axis.bar(positions, values, width, label=name)
            axis.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7)
        axis.set_xticks(range(len(modes)), [f"{mode}, C={concurrency}" for mode in modes])
        axis.set_yscale("log")
        axis.set_ylabel("requests/s (log scale)")
    axes[0][0].legend(fontsize=8)
    figure.suptitle("POST /v1/chat/completions through a gateway to a fixed-answer nginx upstream")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


@contextlib.contextmanager
def _pythonpath(path: Path) -> Iterator[None]:
    """Processes started inside import from ``path`` first (``running_gateway`` copies os.environ)."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per run")
    parser.add_argument("--concurrency", default="1,32", help="comma-separated client counts")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell (the median is shown)")
    parser.add_argument("--modes", default="json,stream")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"of {','.join(TARGETS)}")
    parser.add_argument("--upstream", choices=("nginx", "canned"), default="nginx")
    parser.add_argument("--loadgen", choices=("wrk", "python"), default="wrk")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG here")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="adds target 'baseline': llmserve imported from this src/ (e.g. `git archive` of a commit)",
    )
    args = parser.parse_args(argv)
    modes = [mode for mode in args.modes.split(",") if mode in MODES]
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    names = [name for name in TARGETS if name in args.targets.split(",")]
    if args.baseline_src is not None:
        names.insert(names.index("llmserve") if "llmserve" in names else len(names), "baseline")
    print(machine_line(), flush=True)
    print(f"upstream {args.upstream}, load {args.loadgen}, {args.duration:g} s per run, targets {names}")
    with (
        tempfile.TemporaryDirectory(prefix="llmserve-vs-litellm-") as tmp,
        any_upstream(args.upstream) as upstream,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        urls: dict[str, Any] = {"direct": (upstream.bases["json"], upstream.bases["stream"])}
        for name in names:
            if name.startswith("llmserve"):
                config = llmserve_config(upstream, 2 if name.endswith("w2") else 1)
                urls[name] = stack.enter_context(running_gateway(config, workdir)).url
            elif name == "baseline":
                with _pythonpath(args.baseline_src.resolve()):
                    gateway = stack.enter_context(running_gateway(llmserve_config(upstream, 1), workdir))
                urls[name] = gateway.url
            elif name == "litellm":
                urls[name] = stack.enter_context(litellm_proxy(upstream, workdir))
        urls = {name: urls[name] for name in names}
        generate = stack.enter_context(load_generator(args.loadgen, workdir))
        cells = measure(urls, modes, concurrencies, args.duration, args.repeats, generate)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print(report(cells, modes, concurrencies, names))
    for mode in modes:
        for concurrency in concurrencies:
            if {"llmserve", "litellm"} <= set(names):
                ratio = cells[(mode, concurrency, "llmserve")].rps / cells[(mode, concurrency, "litellm")].rps
                print(f"llmserve / litellm req/s, {mode} C={concurrency}: {ratio:.1f}×")
    if args.plot is not None:
        plot(cells, modes, concurrencies, names, args.plot)
        print(f"plot: {args.plot}")
    return 0 if all(load.errors == 0 for load in cells.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
