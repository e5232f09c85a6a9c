"""How the llmserve gateway rides out a dead deployment, and how fast a circuit breaker opens and recovers.

    python benchmarks/gateway_resilience.py                  # defaults: about 20 s
    python benchmarks/gateway_resilience.py --requests 2000 --concurrency 8 --cycles 5

(a) Dead deployment. A group of two OpenAI-compatible deployments, one healthy, one dead, two ways:
``refused`` (its api_base is a closed loopback port: connection refused) and ``500`` (an upstream that
answers every request with HTTP 500). N requests from C concurrent workers, non-streamed and streamed,
through llmserve; a request succeeds when it gets a 200 (and, streamed, ``data: [DONE]`` with no
error event). Printed: success %, the mean and max ``x-llmserve-attempts`` of the answered requests,
p50/p99 client latency, and how many calls the dead deployment got. Each case runs twice, on two
llmserve processes: with breakers on (``failure_threshold: 5, cooldown_seconds: 2``) and with breakers
that never open (so every request has its 1-in-2 chance of meeting the dead deployment first and
needing the retry). The router's other settings are the defaults (``retries: 2``,
``backoff_base_seconds: 0.1``, weighted strategy, equal weights).

(b) Breaker timing. A single-deployment group whose upstream (``UpstreamServer``, in this process)
starts answering 503 to everything. A request goes out every ``--interval-ms`` (20 ms) whether or not
the previous ones have finished, and ``GET /admin/deployments`` is polled every 5 ms. Measured: from
the first failure the upstream served until the breaker is seen ``open`` (and how many calls reached
the upstream by then), then, the upstream healed at once, from healing until the breaker is seen
``closed`` again and until the first request succeeds (expected: the cooldown, plus up to one interval
for the next request, which is the half-open probe).

The healthy upstreams of (a) run in a separate process (so this client does not share its GIL with
them); llmserve runs as ``python -m llmserve serve --config ... --port ...`` in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from the root

from tests.upstreams.openai_app import OpenAIUpstream
from tests.upstreams.server import Fault, UpstreamServer

from benchmarks.gateway_overhead import (
    free_port,
    machine_line,
    markdown_table,
    new_session,
    openai_deployment,
    percentile,
    running_gateway,
)
from benchmarks.upstream_http_client import _run

COOLDOWN_S = 2.0
FAILURE_THRESHOLD = 5
POLL_S = 0.005
DEAD_KINDS = ("refused", "500")
MODES = ("json", "stream")
NEVER = 1_000_000_000  # a breaker threshold no run reaches

# -- upstreams ------------------------------------------------------------------------------------------


class NoDelayUpstream(UpstreamServer):
    """``UpstreamServer`` with TCP_NODELAY on its connections.

    ``UpstreamServer`` binds a ``socket.socket(AF_INET, SOCK_STREAM)``, whose ``proto`` is 0, so asyncio's
    ``_set_nodelay`` (which checks ``proto == IPPROTO_TCP``) leaves Nagle's algorithm on: from the second
    streamed answer on a kept-alive connection, the first event waits for the client's delayed ACK
    (about 40 ms on Linux). That would be the upstream's latency, not the gateway's, so it is switched
    off here.
    """

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await super()._connection(reader, writer)


def _serve_upstreams(conn: Connection, healthy: Sequence[str], failing: Sequence[str]) -> None:
    """In a child process: OpenAI upstreams (``failing`` ones answer 500 to everything). Sends their URLs,
    then answers each message with the number of requests every upstream has received."""
    servers = {name: NoDelayUpstream(OpenAIUpstream(name)) for name in [*healthy, *failing]}
    for server in servers.values():
        server.start()
    for name in failing:
        servers[name].fail_always(Fault("status", 500))
    conn.send({name: server.url for name, server in servers.items()})
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        while conn.recv() is not None:
            conn.send({name: len(server.requests) for name, server in servers.items()})


@dataclass
class UpstreamProcess:
    urls: dict[str, str]
    conn: Connection

    def request_counts(self) -> dict[str, int]:
        self.conn.send("count")
        counts: dict[str, int] = self.conn.recv()
        return counts


@contextlib.contextmanager
def upstream_process(healthy: Sequence[str], failing: Sequence[str]) -> Iterator[UpstreamProcess]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_upstreams, args=(child, healthy, failing), daemon=True)
    process.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the upstreams did not start")
        yield UpstreamProcess(parent.recv(), parent)
    finally:
        process.terminate()
        process.join(10)


class TimedUpstream(NoDelayUpstream):
    """An ``UpstreamServer`` that notes when it served each request, and whether with a fault."""

    def __init__(self, name: str) -> None:
        super().__init__(OpenAIUpstream(name))
        self.faulted_at: list[float] = []  # perf_counter() of each request met with a fault
        self.answered_at: list[float] = []  # ... and of each answered normally

    def _next_fault(self) -> Fault | None:
        fault = super()._next_fault()
        (self.faulted_at if fault is not None else self.answered_at).append(time.perf_counter())
        return fault


def closed_port() -> int:
    """A loopback port nothing listens on (bound once to pick it, then closed): connection refused."""
    return free_port()


# -- (a) a dead deployment --------------------------------------------------------------------------------


@dataclass
class Outcome:
    ok: bool
    status: int
    latency_s: float
    attempts: int | None
    deployment: str | None
    error: str | None = None


def chat_body(group: str, text: str, stream: bool) -> bytes:
    return orjson.dumps(
        {"model": group, "messages": [{"role": "user", "content": text}], "max_tokens": 32, "stream": stream}
    )


async def chat(session: aiohttp.ClientSession, url: str, group: str, text: str, stream: bool) -> Outcome:
    started = time.perf_counter()
    headers = {"content-type": "application/json"}
    try:
        async with session.post(
            f"{url}/v1/chat/completions", data=chat_body(group, text, stream), headers=headers
        ) as response:
            attempts_header = response.headers.get("x-llmserve-attempts")
            attempts = int(attempts_header) if attempts_header else None
            deployment = response.headers.get("x-llmserve-deployment")
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Outcome(False, 0, time.perf_counter() - started, None, None, f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - started
    if response.status != 200:
        error = body[:200].decode(errors="replace")
        return Outcome(False, response.status, latency, attempts, deployment, error)
    if not stream:
        answer = orjson.loads(body)
        ok = answer.get("object") == "chat.completion" and bool(answer["choices"][0]["message"]["content"])
        return Outcome(ok, 200, latency, attempts, deployment, None if ok else body[:200].decode())
    payloads = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
    errors = [p for p in payloads if p.startswith(b'{"error"')]
    if errors or not payloads or payloads[-1] != b"[DONE]":
        problem = errors[0][:200].decode() if errors else "no [DONE]"
        return Outcome(False, 200, latency, attempts, deployment, problem)
    return Outcome(True, 200, latency, attempts, deployment)


async def load(
    session: aiohttp.ClientSession, url: str, group: str, stream: bool, requests: int, concurrency: int
) -> tuple[list[Outcome], float]:
    outcomes: list[Outcome] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for index in counter:
            outcomes.append(await chat(session, url, group, f"question {index}", stream))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes, time.perf_counter() - started


@dataclass
class DeadCase:
    breaker: str
    dead: str
    mode: str
    outcomes: list[Outcome]
    wall_s: float
    dead_calls: int | None  # calls the 500 upstream received (None: refused, nothing to count)


def dead_case_rows(cases: Sequence[DeadCase]) -> list[list[str]]:
    rows = []
    for case in cases:
        outcomes = case.outcomes
        answered = [o for o in outcomes if o.ok]
        attempts = [o.attempts for o in answered if o.attempts is not None]
        latencies = [o.latency_s * 1e3 for o in outcomes]
        failures = [o for o in outcomes if not o.ok]
        first_failure = "" if not failures else f"{failures[0].status} {failures[0].error or ''}"[:80]
        rows.append(
            [
                case.breaker,
                case.dead,
                case.mode,
                str(len(outcomes)),
                f"{100 * len(answered) / len(outcomes):.1f}%",
                f"{statistics.mean(attempts):.3f}" if attempts else "-",
                str(max(attempts)) if attempts else "-",
                f"{percentile(latencies, 0.5):.1f}",
                f"{percentile(latencies, 0.99):.1f}",
                "-" if case.dead_calls is None else str(case.dead_calls),
                f"{len(outcomes) / case.wall_s:,.0f}",
                first_failure.replace("|", "/"),
            ]
        )
    return rows


DEAD_HEADER = [
    "breaker",
    "dead one",
    "mode",
    "requests",
    "success",
    "mean attempts",
    "max attempts",
    "p50 ms",
    "p99 ms",
    "calls to the dead one",
    "req/s",
    "first failure",
]


async def dead_deployment_cases(
    url: str,
    breaker: str,
    upstreams: UpstreamProcess,
    requests: int,
    concurrency: int,
    log: Callable[[str], None],
) -> list[DeadCase]:
    cases = []
    async with new_session() as session:
        for dead in DEAD_KINDS:
            for mode in MODES:
                # Warm up the pools (client to llmserve, llmserve to the healthy upstream) through a group
                # that has only the healthy upstream, so the case's breakers start fresh and closed.
                await load(session, url, f"warm-{dead}", mode == "stream", 4 * concurrency, concurrency)
                group = f"{dead}-{mode}"
                before = upstreams.request_counts()["dead-500"]
                outcomes, wall = await load(session, url, group, mode == "stream", requests, concurrency)
                after = upstreams.request_counts()["dead-500"]
                case = DeadCase(
                    breaker, dead, mode, outcomes, wall, after - before if dead == "500" else None
                )
                cases.append(case)
                ok = sum(o.ok for o in outcomes)
                log(f"  breaker {breaker}, dead {dead}, {mode}: {ok}/{len(outcomes)} answered")
    return cases


def dead_config(upstreams: UpstreamProcess, refused_port: int, breaker: Mapping[str, Any]) -> dict[str, Any]:
    """Per dead kind and mode a group of a dead and a healthy deployment (each case its own breakers),
    and a ``warm-<kind>`` group with only the healthy one."""
    urls = upstreams.urls
    dead_base = {"refused": f"http://127.0.0.1:{refused_port}/v1", "500": f"{urls['dead-500']}/v1"}
    alive_base = {"refused": f"{urls['alive-1']}/v1", "500": f"{urls['alive-2']}/v1"}
    models = []
    for dead in DEAD_KINDS:
        for mode in MODES:
            group = f"{dead}-{mode}"
            models.append(openai_deployment(f"{group}-dead", dead_base[dead], name=group))
            models.append(openai_deployment(f"{group}-alive", alive_base[dead], name=group))
        models.append(openai_deployment(f"warm-{dead}-1", alive_base[dead], name=f"warm-{dead}"))
    return {"models": models, "router": {"circuit_breaker": dict(breaker)}}


# -- (b) breaker timing -----------------------------------------------------------------------------------


@dataclass
class Cycle:
    first_failure_to_open_ms: float
    fifth_failure_to_open_ms: float
    upstream_calls_by_open: int
    client_requests_by_open: int
    heal_to_half_open_ms: float
    heal_to_closed_ms: float
    heal_to_first_success_ms: float
    refused_while_open: int
    refused_p50_ms: float
    refused_statuses: dict[int, int]
    upstream_calls_while_open: int


@dataclass
class Watch:
    """The breaker state as polled from /admin/deployments: (when first seen, state) at each change."""

    changes: list[tuple[float, str]] = field(default_factory=list)

    @property
    def state(self) -> str:
        return self.changes[-1][1] if self.changes else "unknown"

    def seen(self, state: str, after: float) -> float | None:
        return next((when for when, s in self.changes if s == state and when >= after), None)


async def poll_breaker(session: aiohttp.ClientSession, url: str, deployment: str, watch: Watch) -> None:
    while True:
        async with session.get(f"{url}/admin/deployments") as response:
            rows = (await response.json())["data"]
        now = time.perf_counter()
        (row,) = [r for r in rows if r["id"] == deployment]
        state = row["breaker"]["state"] if isinstance(row["breaker"], dict) else row["breaker"]
        if state != watch.state:
            watch.changes.append((now, str(state)))
        await asyncio.sleep(POLL_S)


async def wait_until(predicate: Callable[[], bool], within_s: float) -> None:
    deadline = time.perf_counter() + within_s
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.001)


@dataclass
class Sent:
    at: float
    outcome: Outcome | None = None

    @property
    def done_at(self) -> float | None:
        return None if self.outcome is None else self.at + self.outcome.latency_s


async def breaker_cycle(
    session: aiohttp.ClientSession, url: str, upstream: TimedUpstream, interval_s: float
) -> Cycle:
    watch = Watch()
    sent: list[Sent] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(record: Sent) -> None:
        record.outcome = await chat(session, url, "solo", f"tick {len(sent)}", False)

    async def ticker() -> None:
        next_at = time.perf_counter()
        while True:
            record = Sent(time.perf_counter())
            sent.append(record)
            task = asyncio.create_task(one(record))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += interval_s
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    poller = asyncio.create_task(poll_breaker(session, url, "solo-1", watch))
    traffic = asyncio.create_task(ticker())
    try:
        # Healthy and closed for a moment, with a few answered requests.
        await wait_until(lambda: watch.state == "closed", 10)
        await asyncio.sleep(0.3)
        upstream.faulted_at.clear()
        upstream.answered_at.clear()
        failing_from = time.perf_counter()
        upstream.fail_always(Fault("status", 503))
        await wait_until(lambda: watch.seen("open", failing_from) is not None, 10)
        opened = watch.seen("open", failing_from)
        assert opened is not None
        upstream.heal()
        healed = time.perf_counter()
        calls_by_open = sum(t <= opened for t in upstream.faulted_at)
        requests_by_open = sum(failing_from <= s.at <= opened for s in sent)
        await wait_until(lambda: watch.seen("closed", healed) is not None, 10 + COOLDOWN_S)
        closed = watch.seen("closed", healed)
        assert closed is not None
        await wait_until(lambda: any(s.at >= healed and s.outcome and s.outcome.ok for s in sent), 5)
        await asyncio.sleep(0.1)
    finally:
        traffic.cancel()
        poller.cancel()
        await asyncio.gather(traffic, poller, return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
    half_open = watch.seen("half_open", healed)
    first_ok = min(
        done
        for s in sent
        if s.at >= healed and s.outcome is not None and s.outcome.ok and (done := s.done_at) is not None
    )
    refused = [
        s.outcome for s in sent if opened < s.at < closed and s.outcome is not None and not s.outcome.ok
    ]
    statuses: dict[int, int] = {}
    for outcome in refused:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    first_failure = upstream.faulted_at[0]
    fifth = upstream.faulted_at[min(FAILURE_THRESHOLD, len(upstream.faulted_at)) - 1]
    return Cycle(
        first_failure_to_open_ms=(opened - first_failure) * 1e3,
        fifth_failure_to_open_ms=(opened - fifth) * 1e3,
        upstream_calls_by_open=calls_by_open,
        client_requests_by_open=requests_by_open,
        heal_to_half_open_ms=float("nan") if half_open is None else (half_open - healed) * 1e3,
        heal_to_closed_ms=(closed - healed) * 1e3,
        heal_to_first_success_ms=(first_ok - healed) * 1e3,
        refused_while_open=len(refused),
        refused_p50_ms=percentile([o.latency_s * 1e3 for o in refused], 0.5),
        refused_statuses=statuses,
        upstream_calls_while_open=sum(opened < t for t in upstream.faulted_at)
        + sum(opened < t < closed for t in upstream.answered_at),
    )


async def breaker_cycles(
    url: str, upstream: TimedUpstream, cycles: int, interval_s: float, log: Callable[[str], None]
) -> list[Cycle]:
    results = []
    async with new_session() as session:
        for _ in range(3):  # warm-up: the pool and the first request's imports
            await chat(session, url, "solo", "warm-up", False)
        for index in range(cycles):
            cycle = await breaker_cycle(session, url, upstream, interval_s)
            log(
                f"  cycle {index + 1}: open after {cycle.first_failure_to_open_ms:.0f} ms, "
                f"closed {cycle.heal_to_closed_ms:.0f} ms after healing"
            )
            results.append(cycle)
    return results


def cycle_rows(cycles: Sequence[Cycle]) -> list[list[str]]:
    def row(name: str, values: Sequence[float], digits: int = 0) -> list[str]:
        cells = ["-" if math.isnan(v) else f"{v:,.{digits}f}" for v in values]
        seen = [v for v in values if not math.isnan(v)]
        return [name, *cells, f"{statistics.median(seen):,.{digits}f}" if seen else "-"]

    return [
        row("first failure → seen open (ms)", [c.first_failure_to_open_ms for c in cycles]),
        row("5th failure → seen open (ms)", [c.fifth_failure_to_open_ms for c in cycles]),
        row("calls that reached the upstream by then", [c.upstream_calls_by_open for c in cycles]),
        row("client requests sent by then", [c.client_requests_by_open for c in cycles]),
        row(
            "heal → seen half_open (ms; - : closed before a poll saw it)",
            [c.heal_to_half_open_ms for c in cycles],
        ),
        row("heal → seen closed (ms)", [c.heal_to_closed_ms for c in cycles]),
        row("heal → first success at the client (ms)", [c.heal_to_first_success_ms for c in cycles]),
        row("requests refused while open", [c.refused_while_open for c in cycles]),
        row("their p50 latency (ms)", [c.refused_p50_ms for c in cycles], 2),
        row("calls to the upstream while open", [c.upstream_calls_while_open for c in cycles]),
    ]


# -- main -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=500, help="requests per dead-deployment case")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=3, help="breaker open/recover cycles")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="(b): one request every ... ms")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    log(machine_line())
    log(
        f"(a) N={args.requests} per case, concurrency {args.concurrency}; "
        f"(b) {args.cycles} cycles, a request every {args.interval_ms:g} ms, /admin polled every "
        f"{POLL_S * 1e3:g} ms; breaker failure_threshold {FAILURE_THRESHOLD}, cooldown {COOLDOWN_S:g} s"
    )
    began = time.perf_counter()
    # A deployment dead from the start: measured without the start-up grace (probing it every second
    # for 30 s), which is there for upstreams that come up late, as results recorded before it were.
    breaker_on = {
        "failure_threshold": FAILURE_THRESHOLD,
        "cooldown_seconds": COOLDOWN_S,
        "startup_grace_seconds": 0,
    }
    breaker_off = {"failure_threshold": NEVER, "min_calls": NEVER, "cooldown_seconds": COOLDOWN_S}
    cases: list[DeadCase] = []
    solo = TimedUpstream("solo")  # (b)'s upstream, in this process: the benchmark switches its faults
    with (
        tempfile.TemporaryDirectory(prefix="llmserve-resilience-") as tmp,
        upstream_process(["alive-1", "alive-2"], ["dead-500"]) as upstreams,
        solo,
    ):
        refused_port = closed_port()
        config = dead_config(upstreams, refused_port, breaker_on)
        config["models"].append(openai_deployment("solo-1", f"{solo.url}/v1", name="solo"))
        with running_gateway(config, Path(tmp)) as gateway:
            try:
                cases += _run(
                    dead_deployment_cases(gateway.url, "on", upstreams, args.requests, args.concurrency, log)
                )
                cycles = _run(breaker_cycles(gateway.url, solo, args.cycles, args.interval_ms / 1e3, log))
            except BaseException:
                log(f"llmserve log tail:\n{gateway.log_tail()}")
                raise
        with running_gateway(dead_config(upstreams, refused_port, breaker_off), Path(tmp)) as gateway:
            try:
                cases += _run(
                    dead_deployment_cases(gateway.url, "off", upstreams, args.requests, args.concurrency, log)
                )
            except BaseException:
                log(f"llmserve log tail:\n{gateway.log_tail()}")
                raise
    log(f"total {time.perf_counter() - began:.0f} s\n")
    log("(a) one of two deployments dead:\n")
    log(markdown_table(DEAD_HEADER, dead_case_rows(cases), right_from=3))
    log("\n(b) breaker open and recovery, single-deployment group:\n")
    header = ["", *[f"cycle {i + 1}" for i in range(len(cycles))], "median"]
    log(markdown_table(header, cycle_rows(cycles)))
    statuses: dict[int, int] = {}
    for cycle in cycles:
        for status, count in cycle.refused_statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    log(f"\nstatuses answered while open: {dict(sorted(statuses.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
