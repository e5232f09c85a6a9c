"""A real HTTP/1.1 server on loopback that plays an upstream provider and fails on demand.

It is written on raw asyncio streams, not an ASGI framework, because the faults a gateway must
survive live below HTTP: a connection reset (RST), a server that accepts and never answers, a stream
cut in the middle of a chunked body. A protocol module (``openai_app``, ``anthropic_app``) turns a
request into a ``Reply`` or a ``StreamReply``; this module sends it, applying the next ``Fault``.

The server runs its own event loop on a background thread, so a test (or a live llmserve process
it starts) talks to it over real sockets. Tests queue faults with ``server.fail(...)``/
``server.fail_always(...)`` and read ``server.requests``, ``server.active`` and ``server.disconnects``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from tests.polling import poll

FaultKind = Literal[
    "status",  # answer `status` with `body` (and Retry-After when set)
    "reset",  # read the request, then abort the TCP connection (RST), nothing sent
    "hang",  # read the request, never answer (until the client goes away)
    "delay",  # wait `delay_s`, then answer normally
    "slow_stream",  # stream normally but wait `delay_s` before every event
    "cut_stream",  # send `after_events` events, then close the connection mid-body
    "malformed_json",  # 200 with a body (or stream events) that is not valid JSON
]


@dataclass
class Fault:
    kind: FaultKind
    status: int = 500
    body: bytes | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    after_events: int = 2


@dataclass(frozen=True)
class UpstreamRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int
    body: Any  # JSON-encoded when not bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """An SSE answer: each event is ``(event name or None, JSON payload or raw str)``."""

    events: list[tuple[str | None, Any]]
    headers: dict[str, str] = field(default_factory=dict)
    event_delay_s: float = 0.0


Handler = Callable[[UpstreamRequest], Reply | StreamReply]


def encode_event(name: str | None, data: Any) -> bytes:
    payload = data if isinstance(data, str) else orjson.dumps(data).decode()
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {payload}\n\n".encode()


class UpstreamServer:
    """``with UpstreamServer(handler) as server: ... server.url ...``"""

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.host = host
        self.port = 0
        self.requests: list[UpstreamRequest] = []
        self.active = 0  # requests being answered right now
        self.disconnects = 0  # requests whose client went away before the answer ended
        self.completed = 0
        self._faults: deque[Fault] = deque()
        self._always: Fault | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # -- control (called from the test's thread) --------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail(self, *faults: Fault) -> None:
        """The next requests meet these faults, one each, in order."""
        with self._lock:
            self._faults.extend(faults)

    def fail_always(self, fault: Fault | None) -> None:
        """Every request meets ``fault`` until called with None (queued faults go first)."""
        with self._lock:
            self._always = fault

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()
            self._always = None

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.disconnects = 0
            self.completed = 0

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """True as soon as ``predicate()`` is, False if it is still false after ``timeout`` seconds."""
        return poll(predicate, within=timeout)

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> UpstreamServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"upstream-{id(self)}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("upstream server did not start")
        if self._start_error is not None:
            raise RuntimeError("upstream server did not start") from self._start_error

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        # proto=IPPROTO_TCP, or asyncio leaves Nagle on (it sets TCP_NODELAY only for TCP-proto sockets)
        # and the second streamed answer on a kept-alive connection stalls ~40 ms.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, 0))
            self.port = sock.getsockname()[1]
            serving = asyncio.start_server(self._connection, sock=sock, backlog=1024)
            self._server = loop.run_until_complete(serving)
        except BaseException as exc:  # start() raises it in the caller's thread at once
            self._start_error = exc
            sock.close()
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        """Close the listener and the handlers still waiting on kept-alive connections."""
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    # -- serving -----------------------------------------------------------------------------
    def _next_fault(self) -> Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            return self._always

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                    self.active += 1
                try:
                    keep_open = await self._answer(request, reader, writer)
                finally:
                    with self._lock:
                        self.active -= 1
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(
        self, request: UpstreamRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Sends the answer; False when the connection must not be reused."""
        fault = self._next_fault()
        if fault is not None and fault.kind == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if fault is not None and fault.kind == "hang":
            await reader.read()  # until the client closes its side
            self._count_disconnect()
            return False
        if (
            fault is not None
            and fault.kind == "delay"
            and not await _sleep_unless_closed(reader, fault.delay_s)
        ):
            self._count_disconnect()
            return False
        if fault is not None and fault.kind == "status":
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            body = fault.body or orjson.dumps(
                {"error": {"message": f"injected {fault.status}", "type": "server_error", "code": None}}
            )
            await _send(writer, fault.status, body, headers)
            return True
        reply = self.handler(request)
        if isinstance(reply, Reply):
            body = reply.body if isinstance(reply.body, bytes) else orjson.dumps(reply.body)
            if fault is not None and fault.kind == "malformed_json":
                body = b'{"id": "broken", "choices": [{"mess'
            await _send(writer, reply.status, body, reply.headers)
            self.completed += 1
            return True
        return await self._stream(reply, fault, reader, writer)

    async def _stream(
        self,
        reply: StreamReply,
        fault: Fault | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items()) + "\r\n"
        writer.write(head.encode())
        delay = reply.event_delay_s
        if fault is not None and fault.kind == "slow_stream":
            delay = fault.delay_s
        for sent, (name, data) in enumerate(_events(reply, fault)):
            if fault is not None and fault.kind == "cut_stream" and sent >= fault.after_events:
                await writer.drain()
                writer.close()  # mid-body: no terminating chunk
                return False
            if delay and not await _sleep_unless_closed(reader, delay):
                self._count_disconnect()
                return False
            chunk = encode_event(name, data)
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            try:
                await writer.drain()
            except ConnectionError:
                self._count_disconnect()
                return False
            if reader.at_eof():
                self._count_disconnect()
                return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        self.completed += 1
        return True

    def _count_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1


def _events(reply: StreamReply, fault: Fault | None) -> Iterable[tuple[str | None, Any]]:
    for index, (name, data) in enumerate(reply.events):
        if fault is not None and fault.kind == "malformed_json" and index == 1:
            yield name, '{"choices": [{"delta": {"content": "bro'
            continue
        yield name, data


async def _sleep_unless_closed(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Sleeps; False as soon as the client closes the connection (a cancel reaching the upstream)."""
    try:
        await asyncio.wait_for(reader.read(1), timeout=seconds)
    except TimeoutError:
        return True
    return False  # EOF (or unexpected bytes, which a well-behaved client does not send mid-request)


async def _read_request(reader: asyncio.StreamReader) -> UpstreamRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return UpstreamRequest(method, target.split("?")[0], headers, body)


async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str]) -> None:
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode() + body)
    await writer.drain()


@contextlib.contextmanager
def serving(servers: dict[str, UpstreamServer]) -> Iterator[dict[str, UpstreamServer]]:
    """Starts every server, yields them by name, stops them all after (a module fixture's body)."""
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()
