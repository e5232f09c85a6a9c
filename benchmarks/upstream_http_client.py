"""httpx against aiohttp as the gateway's upstream HTTP client, under load, on loopback.

    python benchmarks/upstream_http_client.py
    python benchmarks/upstream_http_client.py --requests 5000 --concurrency 1,32,128 --repeats 3
    python benchmarks/upstream_http_client.py --clients httpx,aiohttp,httpx2 --loop asyncio

DESIGN.md §7 asks for "an async HTTP client with a fast connection pool for upstreams (measure httpx
against aiohttp under load and keep the faster)". This script is that measurement.

The upstream is a raw asyncio ``Protocol`` HTTP/1.1 keep-alive server (uvloop when installed) in a
separate process, so it does not share the benchmark's event loop or GIL. It answers
``POST /v1/chat/completions`` with a canned OpenAI ``chat.completion`` (about 600 bytes), or, when the
request has ``"stream":true``, with a chunked ``text/event-stream`` of 20 ``chat.completion.chunk``
events and ``data: [DONE]``, each event written as its own HTTP chunk. Its CPU use is printed so one
can check that it is not the bottleneck.

Both clients run on the same event loop (uvloop when installed, as under uvicorn), with the same pool
size (1,000 connections), no timeouts and no proxy lookup, send the same pre-encoded request body and
do the same decode work: the whole body through ``orjson.loads`` for a plain answer; for a stream, the
library's own line iterator, ``orjson.loads`` on every ``data:`` payload until ``[DONE]``, then the
(empty) rest of the body so the connection goes back to the pool. Every run starts a new client, warms
it up at the measured concurrency (which opens the connections), then sends N requests from C
concurrent workers; the upstream counts the connections opened during the measured part (0 means
every request reused a pooled connection). Runs are repeated with the clients' order alternated; the
table shows the median requests/s and CPU per request over the repeats and latency percentiles over
all of their requests. CPU per request is the benchmark process's ``time.process_time`` over the
measured part divided by N: what a gateway would pay on cores it shares with everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Protocol, cast

import httpx
import orjson
from rich.console import Console
from rich.table import Table

try:  # optional: the gateway does not depend on aiohttp; install it to run this comparison
    import aiohttp  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    aiohttp = None  # type: ignore[assignment, unused-ignore]
try:  # optional, off by default: pydantic's fork of httpx (the openai SDK depends on it)
    import httpx2  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    httpx2 = None  # type: ignore[assignment, unused-ignore]

PATH = "/v1/chat/completions"
STREAM_EVENTS = 20
MODES = ("json", "stream")
CLIENTS = ("httpx", "aiohttp", "httpx2")

# -- the upstream -------------------------------------------------------------------------------


def _completion() -> bytes:
    content = (
        "A connection pool keeps sockets to an upstream open between requests, so a request does "
        "not pay for a new TCP handshake; the pool size bounds how many run at once. "
    )
    body = {
        "id": "chatcmpl-9x7Bq2LwzR4nM8sKdYp1VtHc3EaF",
        "object": "chat.completion",
        "created": 1764150000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 31,
            "completion_tokens": 42,
            "total_tokens": 73,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    return orjson.dumps(body)


def _chunk(index: int) -> bytes:
    last = index == STREAM_EVENTS - 1
    delta: dict[str, Any] = {} if last else {"content": f"word{index} "}
    if index == 0:
        delta = {"role": "assistant", "content": ""}
    body = {
        "id": "chatcmpl-9x7Bq2LwzR4nM8sKdYp1VtHc3EaF",
        "object": "chat.completion.chunk",
        "created": 1764150000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": "stop" if last else None}
        ],
    }
    return orjson.dumps(body)


def _http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


JSON_BODY = _completion()
JSON_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(JSON_BODY)}\r\n".encode()
    + b"x-request-id: req_bench\r\n\r\n"
    + JSON_BODY
)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    b"cache-control: no-cache\r\nx-request-id: req_bench\r\n\r\n"
)
STREAM_CHUNKS = [_http_chunk(b"data: " + _chunk(i) + b"\n\n") for i in range(STREAM_EVENTS)]
STREAM_CHUNKS += [_http_chunk(b"data: [DONE]\n\n"), b"0\r\n\r\n"]
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class _Upstream(asyncio.Protocol):
    def __init__(self, accepted: Synchronized[int]) -> None:
        self.accepted = accepted
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.accepted.value += 1  # only this process writes it

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else None])
            elif b"\r\ntransfer-encoding:" in head:
                self.transport.write(BAD_REQUEST)  # both clients send a content-length
                self.transport.close()
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        method, _, rest = head.partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        if method != b"post" or target != PATH.encode():
            self.transport.write(NOT_FOUND)
        elif b'"stream":true' in body:
            self.transport.write(STREAM_HEAD)
            for chunk in STREAM_CHUNKS:  # one write (one send) per event, like a real stream
                self.transport.write(chunk)
        else:
            self.transport.write(JSON_RESPONSE)


def _serve(port_out: Connection, accepted: Synchronized[int]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Upstream(accepted), "127.0.0.1", 0, backlog=2048)
        port_out.send(server.sockets[0].getsockname()[1])
        port_out.close()
        await server.serve_forever()

    _run(main())


HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def _run(coro: Coroutine[Any, Any, Any], loop: str = "uvloop") -> Any:
    """Runs ``coro`` on uvloop (what uvicorn picks when it is installed) or on asyncio's own loop."""
    if loop == "uvloop" and HAVE_UVLOOP:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of another process (Linux), None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the clients --------------------------------------------------------------------------------

REQUEST_HEADERS = {"authorization": "Bearer sk-bench", "content-type": "application/json"}


def _request_body(stream: bool) -> bytes:
    return orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What does a connection pool do?"},
            ],
            "max_tokens": 64,
            "temperature": 0.2,
            "stream": stream,
        }
    )


class Client(Protocol):
    async def call(self, stream: bool) -> None: ...

    async def close(self) -> None: ...


def _check_json(data: bytes) -> None:
    if orjson.loads(data)["object"] != "chat.completion":
        raise RuntimeError("unexpected answer")


class HttpxClient:
    def __init__(self, url: str, pool: int, fork: bool = False) -> None:
        self.url = url + PATH
        self.bodies = {False: _request_body(False), True: _request_body(True)}
        if fork:  # httpx2 keeps httpx's API
            assert httpx2 is not None
            fork_limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=200)
            client = httpx2.AsyncClient(limits=fork_limits, timeout=None, trust_env=False)
            self.client = cast(httpx.AsyncClient, client)
        else:
            limits = httpx.Limits(max_connections=pool, max_keepalive_connections=200)
            self.client = httpx.AsyncClient(limits=limits, timeout=None, trust_env=False)

    async def call(self, stream: bool) -> None:
        body = self.bodies[stream]
        if not stream:
            response = await self.client.post(self.url, content=body, headers=REQUEST_HEADERS)
            if response.status_code != 200:
                raise RuntimeError(f"status {response.status_code}")
            _check_json(response.content)
            return
        events = 0
        done = False
        async with self.client.stream("POST", self.url, content=body, headers=REQUEST_HEADERS) as response:
            if response.status_code != 200:
                raise RuntimeError(f"status {response.status_code}")
            async for line in response.aiter_lines():  # read to the end: the connection is reused
                if done or not line.startswith("data: "):
                    continue
                payload = line[6:]
                if payload == "[DONE]":
                    done = True
                    continue
                orjson.loads(payload)
                events += 1
        if not done or events != STREAM_EVENTS:
            raise RuntimeError("incomplete stream")

    async def close(self) -> None:
        await self.client.aclose()


class AiohttpClient:
    def __init__(self, url: str, pool: int) -> None:
        assert aiohttp is not None
        self.url = url + PATH
        self.bodies = {False: _request_body(False), True: _request_body(True)}
        connector = aiohttp.TCPConnector(limit=pool)
        timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def call(self, stream: bool) -> None:
        body = self.bodies[stream]
        async with self.session.post(self.url, data=body, headers=REQUEST_HEADERS) as response:
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            if not stream:
                _check_json(await response.read())
                return
            events = 0
            done = False
            async for line in response.content:  # lines, with their b"\n"; read to the end
                if done or not line.startswith(b"data: "):
                    continue
                payload = line[6:].rstrip(b"\r\n")
                if payload == b"[DONE]":
                    done = True
                    continue
                orjson.loads(payload)
                events += 1
        if not done or events != STREAM_EVENTS:
            raise RuntimeError("incomplete stream")

    async def close(self) -> None:
        await self.session.close()


def _make_client(name: str, url: str, pool: int) -> Client:
    if name == "aiohttp":
        return AiohttpClient(url, pool)
    return HttpxClient(url, pool, fork=name == "httpx2")


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Run:
    requests: int
    wall_s: float
    cpu_s: float
    latencies_s: list[float]
    new_connections: int
    server_cpu_s: float | None


async def _drive(client: Client, stream: bool, requests: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            await client.call(stream)
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def _measure(
    name: str,
    url: str,
    stream: bool,
    requests: int,
    concurrency: int,
    counters: Callable[[], tuple[int, float | None]],
) -> Run:
    client = _make_client(name, url, pool=1000)
    try:
        await _drive(client, stream, max(4 * concurrency, 200), concurrency)  # warm-up, opens the pool
        accepted_before, server_cpu_before = counters()
        cpu_before = time.process_time()
        start = time.perf_counter()
        latencies = await _drive(client, stream, requests, concurrency)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_before
        accepted_after, server_cpu_after = counters()
    finally:
        await client.close()
    server_cpu = None
    if server_cpu_before is not None and server_cpu_after is not None:
        server_cpu = server_cpu_after - server_cpu_before
    return Run(requests, wall, cpu, latencies, accepted_after - accepted_before, server_cpu)


@dataclass
class Cell:
    runs: list[Run] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(run.requests / run.wall_s for run in self.runs)

    @property
    def rps_range(self) -> tuple[float, float]:
        values = [run.requests / run.wall_s for run in self.runs]
        return min(values), max(values)

    @property
    def cpu_us(self) -> float:
        return statistics.median(run.cpu_s / run.requests for run in self.runs) * 1e6

    def latency_ms(self, quantile: float) -> float:
        values = sorted(lat for run in self.runs for lat in run.latencies_s)
        return values[min(len(values) - 1, int(quantile * len(values)))] * 1e3

    @property
    def new_connections(self) -> int:
        return sum(run.new_connections for run in self.runs)

    @property
    def server_cpu_pct(self) -> float | None:
        if any(run.server_cpu_s is None for run in self.runs):
            return None
        return 100 * sum(run.server_cpu_s or 0.0 for run in self.runs) / sum(run.wall_s for run in self.runs)


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _parse_concurrency(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


Counters = Callable[[], tuple[int, float | None]]
Cells = dict[tuple[str, int, str], Cell]


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str], list[str]]:
    """The options, the modes and the clients to measure (argparse exits on a wrong one)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per run (N)")
    parser.add_argument("--concurrency", type=_parse_concurrency, default=[1, 32, 128], help="e.g. 1,32,128")
    parser.add_argument("--repeats", type=int, default=3, help="runs per client/mode/concurrency")
    parser.add_argument("--modes", default="json,stream", help="json, stream or both")
    parser.add_argument(
        "--clients", default="httpx,aiohttp", help="from httpx, aiohttp and httpx2 (pydantic's fork)"
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop" if HAVE_UVLOOP else "asyncio",
        help="the benchmark's event loop (the upstream always uses uvloop when installed)",
    )
    args = parser.parse_args(argv)
    modes = [mode for mode in args.modes.split(",") if mode]
    if any(mode not in MODES for mode in modes):
        parser.error("--modes takes json and/or stream")
    clients = [name for name in args.clients.split(",") if name]
    if not clients or any(name not in CLIENTS for name in clients):
        parser.error("--clients takes httpx, aiohttp and/or httpx2")
    return args, modes, clients


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=132)  # a full-width table when the output goes to a file or pipe
    return console


def _not_installed(clients: list[str]) -> list[str]:
    """The optional client libraries asked for that this environment lacks."""
    missing = [name for name, module in (("aiohttp", aiohttp), ("httpx2", httpx2)) if module is None]
    return [name for name in missing if name in clients]


@contextlib.contextmanager
def _upstream() -> Iterator[tuple[str, Counters]]:
    """The canned upstream in a process of its own: its URL, and a reading of its accepted connections
    and CPU seconds. Terminated when the block ends."""
    context = multiprocessing.get_context("spawn")
    accepted = context.Value("q", 0, lock=False)
    port_in, port_out = context.Pipe(duplex=False)
    server = context.Process(target=_serve, args=(port_out, accepted), daemon=True, name="upstream")
    server.start()
    try:
        if not port_in.poll(30):
            raise RuntimeError("upstream did not start")
        url = f"http://127.0.0.1:{port_in.recv()}"
        pid = server.pid
        assert pid is not None

        def counters() -> tuple[int, float | None]:
            return int(accepted.value), _process_cpu_s(pid)

        yield url, counters
    finally:
        server.terminate()
        server.join(10)


def _measure_cells(
    args: argparse.Namespace,
    modes: list[str],
    clients: list[str],
    url: str,
    counters: Counters,
    console: Console,
) -> Cells:
    """Every mode x concurrency x client, ``args.repeats`` times, the clients' order alternated."""
    console.print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{', '.join(f'{name} {_version(name)}' for name in clients)}, event loop {args.loop}, "
        f"load average {os.getloadavg()[0]:.2f}; N={args.requests}, repeats={args.repeats}"
    )
    cells: Cells = {}
    started = time.perf_counter()
    for mode in modes:
        for concurrency in args.concurrency:
            for repeat in range(args.repeats):
                order = clients if repeat % 2 == 0 else clients[::-1]
                for name in order:
                    measure = _measure(name, url, mode == "stream", args.requests, concurrency, counters)
                    run = _run(measure, args.loop)
                    cells.setdefault((mode, concurrency, name), Cell()).runs.append(run)
            console.print(f"  {mode} C={concurrency} done ({time.perf_counter() - started:.0f} s)")
    return cells


def _results_table(cells: Cells, modes: list[str], concurrencies: list[int], clients: list[str]) -> Table:
    table = Table(title="Upstream HTTP clients (loopback, canned upstream)")
    for column in ("mode", "C", "client", "req/s", "req/s range", "p50 ms", "p99 ms", "CPU µs/req"):
        table.add_column(column, justify="left" if column in ("mode", "client") else "right")
    table.add_column("new conns", justify="right")
    table.add_column("upstream CPU", justify="right")
    for mode in modes:
        for concurrency in concurrencies:
            for name in clients:
                cell = cells[(mode, concurrency, name)]
                low, high = cell.rps_range
                server_pct = cell.server_cpu_pct
                table.add_row(
                    mode,
                    str(concurrency),
                    name,
                    f"{cell.rps:,.0f}",
                    f"{low:,.0f}-{high:,.0f}",
                    f"{cell.latency_ms(0.50):.2f}",
                    f"{cell.latency_ms(0.99):.2f}",
                    f"{cell.cpu_us:,.0f}",
                    str(cell.new_connections),
                    "n/a" if server_pct is None else f"{server_pct:.0f}%",
                )
        table.add_section()
    return table


def _ratios_table(
    cells: Cells, modes: list[str], concurrencies: list[int], pairs: list[tuple[str, str]]
) -> Table:
    ratios = Table(title="Ratios (first client / second client)")
    for column in ("mode", "C", "clients", "req/s", "p50", "p99", "CPU/req"):
        ratios.add_column(column, justify="left" if column in ("mode", "clients") else "right")
    for first, second in pairs:
        for mode in modes:
            for concurrency in concurrencies:
                a, h = cells[(mode, concurrency, first)], cells[(mode, concurrency, second)]
                ratios.add_row(
                    mode,
                    str(concurrency),
                    f"{first} / {second}",
                    f"{a.rps / h.rps:.2f}x",
                    f"{a.latency_ms(0.5) / h.latency_ms(0.5):.2f}x",
                    f"{a.latency_ms(0.99) / h.latency_ms(0.99):.2f}x",
                    f"{a.cpu_us / h.cpu_us:.2f}x",
                )
        ratios.add_section()
    return ratios


def main(argv: list[str] | None = None) -> int:
    args, modes, clients = _parse_args(argv)
    console = _console()
    if missing := _not_installed(clients):
        console.print(
            f"[red]{', '.join(missing)} not installed[/red]: not a dependency of llmserve. "
            f"Run `pip install {' '.join(missing)}` in this environment to compare it with httpx."
        )
        return 1

    with _upstream() as (url, counters):
        cells = _measure_cells(args, modes, clients, url, counters, console)
    console.print(_results_table(cells, modes, args.concurrency, clients))

    pairs = [("aiohttp", other) for other in clients if other != "aiohttp" and "aiohttp" in clients]
    if pairs:
        console.print(_ratios_table(cells, modes, args.concurrency, pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
