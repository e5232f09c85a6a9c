"""What llmserve's Prometheus metrics and OpenTelemetry tracing cost per request.

    python benchmarks/observability_overhead.py                 # defaults: about 2 min
    python benchmarks/observability_overhead.py --requests 3000 --concurrency 1,16,64 --repeats 5

Four gateways, one per configuration (metrics off/on x tracing off/on), run side by side on loopback in
front of the same fast upstream, the raw asyncio server of ``gateway_overhead.py`` in its own process
(which answers in microseconds, so what is measured is the gateway). Each is
``python -m llmserve serve`` with one ``provider: openai`` deployment and

    observability: {metrics: true|false, tracing: {enabled: true|false, exporter: otlp|none, endpoint: ...}}

With tracing on, each gateway exports over OTLP/HTTP (protobuf, the SDK's batch processor) to a
collector of its own: a small aiohttp server in its own process that answers 200 to
``POST /v1/traces`` and decodes every post to count the spans, so the exporter does its real work
(encoding, HTTP) and the spans are checked to arrive. With metrics on, nothing scrapes ``/metrics``:
what is measured is the cost of recording, which every request pays, not of a scrape.

The client is the aiohttp client of ``gateway_overhead.py`` (one warm pool, uvloop), sending the same
non-streamed chat completion. For each repeat and concurrency C, the four gateways are measured one
after the other (the order rotated each repeat so a drift of the machine spreads over all four), each
run warmed up at C and then timed over N requests from C workers. Percentiles are over every request
of the repeats, req/s the median over the runs; gateway CPU per request is the gateway process's user +
system time over the timed runs divided by their requests. Relative changes are against the gateway
with both off, at the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from the root

from benchmarks.gateway_overhead import (
    GROUP,
    CannedUpstream,
    Cell,
    Gateway,
    Run,
    Target,
    _parse_concurrency,
    canned_upstream,
    drive,
    machine_line,
    markdown_table,
    new_session,
    openai_deployment,
    running_gateway,
)
from benchmarks.upstream_http_client import _process_cpu_s, _run


@dataclass(frozen=True)
class Setup:
    metrics: bool
    tracing: bool

    @property
    def name(self) -> str:
        return f"metrics {'on' if self.metrics else 'off'}, tracing {'on' if self.tracing else 'off'}"


SETUPS = (Setup(False, False), Setup(True, False), Setup(False, True), Setup(True, True))
BASELINE = SETUPS[0]

# -- the OTLP/HTTP collector ------------------------------------------------------------------------


@dataclass
class Collector:
    url: str
    _posts: Any  # multiprocessing Values ('q') the collector process counts in
    _spans: Any
    _bytes: Any

    @property
    def posts(self) -> int:
        return int(self._posts.value)

    @property
    def spans(self) -> int:
        return int(self._spans.value)

    @property
    def received_bytes(self) -> int:
        return int(self._bytes.value)


def _collect(port_out: Connection, posts: Any, spans: Any, received: Any) -> None:
    """The collector process: 200 to every ``POST /v1/traces``, counting posts, bytes and spans."""
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    empty = ExportTraceServiceResponse().SerializeToString()

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        decoded = ExportTraceServiceRequest.FromString(body)
        posts.value += 1
        received.value += len(body)
        spans.value += sum(len(scope.spans) for rs in decoded.resource_spans for scope in rs.scope_spans)
        return web.Response(body=empty, content_type="application/x-protobuf")

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        port_out.send(sock.getsockname()[1])
        port_out.close()
        await asyncio.Event().wait()

    _run(main())


@contextlib.contextmanager
def otlp_collector() -> Iterator[Collector]:
    context = multiprocessing.get_context("spawn")
    posts, spans, received = (context.Value("q", 0, lock=False) for _ in range(3))
    port_in, port_out = context.Pipe(duplex=False)
    process = context.Process(
        target=_collect, args=(port_out, posts, spans, received), daemon=True, name="collector"
    )
    process.start()
    try:
        if not port_in.poll(30):
            raise RuntimeError("the OTLP collector did not start")
        yield Collector(f"http://127.0.0.1:{port_in.recv()}", posts, spans, received)
    finally:
        process.terminate()
        process.join(10)


def gateway_config(setup: Setup, upstream: CannedUpstream, collector: Collector | None) -> dict[str, Any]:
    tracing: dict[str, Any] = {"enabled": False, "exporter": "none"}
    if setup.tracing:
        assert collector is not None
        tracing = {"enabled": True, "exporter": "otlp", "endpoint": collector.url, "sample_ratio": 1.0}
    return {
        "models": [openai_deployment("bench-1", f"{upstream.url}/v1")],
        "observability": {"metrics": setup.metrics, "tracing": tracing},
    }


# -- measuring --------------------------------------------------------------------------------------


async def measure(
    upstream: CannedUpstream,
    gateways: Mapping[Setup, Gateway],
    concurrencies: Sequence[int],
    requests: int,
    repeats: int,
    sent: dict[Setup, int],
    log: Callable[[str], None],
) -> dict[tuple[Setup, int], Cell]:
    cells: dict[tuple[Setup, int], Cell] = {}
    started = time.perf_counter()

    def cpu_of(pid: int) -> float:
        return _process_cpu_s(pid) or 0.0

    async with new_session() as session:
        targets = {setup: Target(session, gateway.url, GROUP) for setup, gateway in gateways.items()}
        setups = list(gateways)
        for repeat in range(repeats):
            order = setups[repeat % len(setups) :] + setups[: repeat % len(setups)]
            for concurrency in concurrencies:
                for setup in order:
                    target, gateway = targets[setup], gateways[setup]
                    warmup = max(4 * concurrency, 100)
                    await drive(target, False, warmup, concurrency)
                    accepted = upstream.accepted
                    gateway_cpu, upstream_cpu = cpu_of(gateway.pid), cpu_of(upstream.pid)
                    client_cpu = time.process_time()
                    start = time.perf_counter()
                    samples = await drive(target, False, requests, concurrency)
                    wall = time.perf_counter() - start
                    run = Run(
                        samples,
                        wall,
                        time.process_time() - client_cpu,
                        cpu_of(gateway.pid) - gateway_cpu,
                        cpu_of(upstream.pid) - upstream_cpu,
                        upstream.accepted - accepted,
                    )
                    sent[setup] += warmup + len(samples)
                    cells.setdefault((setup, concurrency), Cell()).runs.append(run)
            log(f"  repeat {repeat + 1}/{repeats} done ({time.perf_counter() - started:.0f} s)")
    return cells


def _relative(value: float, base: float) -> str:
    return f"{(value / base - 1) * 100:+.1f}%"


def report(cells: Mapping[tuple[Setup, int], Cell], concurrencies: Sequence[int]) -> str:
    rows: list[list[str]] = []
    for concurrency in concurrencies:
        base = cells[(BASELINE, concurrency)]
        for setup in SETUPS:
            cell = cells[(setup, concurrency)]
            is_base = setup == BASELINE
            rows.append(
                [
                    str(concurrency),
                    "on" if setup.metrics else "off",
                    "on" if setup.tracing else "off",
                    f"{cell.rps:,.0f}",
                    "" if is_base else _relative(cell.rps, base.rps),
                    f"{cell.latency_ms(0.5):.2f}",
                    "" if is_base else _relative(cell.latency_ms(0.5), base.latency_ms(0.5)),
                    f"{cell.latency_ms(0.99):.2f}",
                    "" if is_base else _relative(cell.latency_ms(0.99), base.latency_ms(0.99)),
                    f"{cell.cpu_us('gateway'):,.0f}",
                    "" if is_base else _relative(cell.cpu_us("gateway"), base.cpu_us("gateway")),
                ]
            )
    header = [
        "C",
        "metrics",
        "tracing",
        "req/s",
        "Δ req/s",
        "p50 ms",
        "Δ p50",
        "p99 ms",
        "Δ p99",
        "gateway CPU µs/req",
        "Δ CPU",
    ]
    return markdown_table(header, rows, right_from=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per run (N)")
    parser.add_argument("--concurrency", type=_parse_concurrency, default=[1, 16], help="e.g. 1,16")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration and concurrency")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    log(machine_line())
    log(f"N={args.requests} per run, repeats={args.repeats}, concurrency {args.concurrency}, non-stream")
    began = time.perf_counter()
    sent = {setup: 0 for setup in SETUPS}
    collectors: dict[Setup, Collector] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmserve-observability-")))
        upstream = stack.enter_context(canned_upstream())
        for setup in SETUPS:
            if setup.tracing:
                collectors[setup] = stack.enter_context(otlp_collector())
        with contextlib.ExitStack() as gateways_stack:  # the gateways stop (and flush spans) first
            gateways: dict[Setup, Gateway] = {}
            for setup in SETUPS:
                workdir = tmp / f"m{int(setup.metrics)}t{int(setup.tracing)}"
                workdir.mkdir()
                config = gateway_config(setup, upstream, collectors.get(setup))
                gateways[setup] = gateways_stack.enter_context(running_gateway(config, workdir))
                log(f"{setup.name}: llmserve {gateways[setup].url} (pid {gateways[setup].pid})")
            try:
                cells = _run(
                    measure(upstream, gateways, args.concurrency, args.requests, args.repeats, sent, log)
                )
            except BaseException:
                for setup, gateway in gateways.items():
                    log(f"{setup.name}: llmserve log tail:\n{gateway.log_tail()}")
                raise
        deadline = time.monotonic() + 10  # the collector may still be decoding the last posts
        while time.monotonic() < deadline and any(c.spans == 0 for c in collectors.values()):
            time.sleep(0.1)
        time.sleep(0.5)
        exported = {
            setup: (collector.posts, collector.spans, collector.received_bytes)
            for setup, collector in collectors.items()
        }
    log(f"total {time.perf_counter() - began:.0f} s\n")
    log(report(cells, args.concurrency))
    log("")
    for setup, (posts, spans, received) in exported.items():
        log(
            f"{setup.name}: {spans:,} spans exported in {posts:,} OTLP posts ({received / 1e6:.1f} MB) "
            f"for {sent[setup]:,} requests ({spans / max(sent[setup], 1):.1f} spans/request)"
        )
    if any(spans == 0 for _, spans, _ in exported.values()):
        log("warning: a tracing gateway exported no spans")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
