"""``queue_overload.py --live``: a real server with the bundled model at 10x what its engine decodes.

``llmserve serve`` with no configuration (the bundled tiny-chat and every default: admission of
``engine.max_batch_size`` per local deployment, ``queue.max_queued`` more waiting up to
``queue.queue_timeout_seconds``), then ``overload x max_batch_size`` clients, each in a closed loop:
a 16-token chat, and after a 503 a pause of its Retry-After (as the OpenAI SDK does). Latencies are
the client's, request written to answer read. The clients are a bare HTTP/1.1 keep-alive loop
over asyncio streams (``LightClient``), not httpx: on a 2-core machine 160 httpx clients in one
process spend so long on their own CPU that their measured 503s took seconds which the server
answered in milliseconds (a separate one-client probe saw 3 ms), and they wrote a request head
and its body so far apart that the server's body timeout fired.

Printed: answers and their latency p50 / p99 / max, 503s and theirs (p50 / max), the Retry-After
seen, any other status, and the server's peak RSS.
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson

from benchmarks.gateway_overhead import percentile, running_gateway
from llmserve.config import EngineSettings, QueueSettings

BODY = {"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 16}


@dataclass
class Answer:
    status: int
    retry_after: str
    body: bytes


class LightClient:
    """One keep-alive connection that sends a request and reads the answer: a head and a
    Content-Length or chunked body (a stream). Head and body go out in one write."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, payload: bytes) -> Answer:
        return await self.request("POST", path, payload)

    async def request(self, method: str, path: str, payload: bytes = b"") -> Answer:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if payload:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        try:
            return await self._read(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()  # closed by the server (keep-alive timeout): once more, afresh
            return await self.request(method, path, payload)

    async def _read(self, reader: asyncio.StreamReader) -> Answer:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        fields = {name.lower(): value for name, value in headers.items()}
        if fields.get("transfer-encoding", "").lower() == "chunked":  # a stream
            body = await _read_chunked(reader)
        else:
            body = await reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return Answer(int(lines[0].split()[1]), fields.get("retry-after", ""), body)

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


@dataclass
class LiveOutcomes:
    served_s: list[float] = field(default_factory=list)
    refused_s: list[float] = field(default_factory=list)
    retry_after: Counter[str] = field(default_factory=Counter)
    other: Counter[int] = field(default_factory=Counter)
    peak_rss_kib: int = 0


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the CRLF after each chunk
    await reader.readuntil(b"\r\n")  # no trailers: the blank line after the last chunk
    return b"".join(parts)


async def _client(url: str, deadline: float, out: LiveOutcomes) -> None:
    parts = urlsplit(url)
    client = LightClient(parts.hostname or "127.0.0.1", parts.port or 80)
    payload = orjson.dumps(BODY)
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = await client.post("/v1/chat/completions", payload)
            took = time.perf_counter() - started
            if answer.status == 200:
                out.served_s.append(took)
            elif answer.status == 503:
                out.refused_s.append(took)
                out.retry_after[answer.retry_after or "(none)"] += 1
                await asyncio.sleep(float(answer.retry_after or 1))  # as the OpenAI SDK does
            else:
                out.other[answer.status] += 1
    finally:
        await client.close()


async def drive(url: str, pid: int, clients: int, seconds: float) -> LiveOutcomes:
    """``clients`` closed-loop chat clients for ``seconds`` against a ready server (process ``pid``)."""
    out = LiveOutcomes()
    async with httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as client:
        warm = await client.post("/v1/chat/completions", json=BODY)  # loads the model
        warm.raise_for_status()

    async def sample_rss() -> None:
        while True:
            out.peak_rss_kib = max(out.peak_rss_kib, _rss_kib(pid))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_rss())
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(url, deadline, out) for _ in range(clients)))
    sampler.cancel()
    return out


def _ms(values: list[float], *quantiles: float) -> str:
    return " / ".join(f"{percentile(values, q) * 1e3:,.0f}" for q in quantiles)


def run_live(overload: float, seconds: float) -> int:
    width = EngineSettings().max_batch_size
    queue = QueueSettings()
    clients = round(overload * width)
    with tempfile.TemporaryDirectory() as workdir, running_gateway({}, Path(workdir)) as server:
        out = asyncio.run(drive(server.url, server.pid, clients, seconds))
    served, refused = out.served_s, out.refused_s
    print(f"# Live overload: {clients} chat clients on the bundled model ({platform.machine()})")
    print(
        f"engine.max_batch_size {width}, queue.max_queued {queue.max_queued}, "
        f"queue_timeout {queue.queue_timeout_seconds:g} s; {seconds:g} s, closed loop, Retry-After honoured\n"
    )
    print("| what | figure |\n|---|---|")
    print(f"| answered 200 | {len(served):,} ({len(served) / seconds:.1f}/s) |")
    print(f"| 200 latency p50 / p99 / max (ms) | {_ms(served, 0.5, 0.99, 1.0)} |")
    print(f"| 503 | {len(refused):,} |")
    print(f"| 503 latency p50 / max (ms) | {_ms(refused, 0.5, 1.0)} |")
    print(f"| Retry-After on the 503s | {dict(out.retry_after)} |")
    print(f"| other statuses | {dict(out.other) or '-'} |")
    print(f"| server peak RSS (MiB) | {out.peak_rss_kib / 1024:,.0f} |")
    ok = bool(served) and (not refused or statistics.median(refused) < 1.0)
    print(f"\n503 p50 within 1 s: {'yes' if ok else 'NO'}")
    return 0 if ok else 1
