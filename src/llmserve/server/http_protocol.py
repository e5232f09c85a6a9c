"""uvicorn's httptools protocol, except that an ``Upgrade`` offer other than WebSocket is ignored.

Why: the JDK's HttpClient offers ``Upgrade: h2c`` (with ``Connection: Upgrade, HTTP2-Settings``) on
every plain-HTTP request, bodies included. httptools tells llhttp to skip the body of any request
that offers an upgrade and then stops parsing, so uvicorn hands the app an empty body and drops the
bytes that follow (Kludex/uvicorn#2722): Java clients got 400 "missing body". RFC 9110 section 7.8
lets a server ignore an upgrade offer, which is what h11 does; this class does the same, so
httptools (18% less CPU per proxied request than h11 on the gateway benchmark) can be the default parser.

How: when the headers of such a request are complete, the request starts as usual. llhttp then
stops where the body begins; a fresh parser is fed the request's framing headers only
(Content-Length or Transfer-Encoding, and Connection minus its ``upgrade`` token) followed by the
rest of the bytes, so llhttp still decides where the body ends (chunked included) and any pipelined
request after it is parsed normally. The replayed head's callbacks are ignored, except that
keep-alive is taken from it. ``Upgrade: websocket`` and ``CONNECT`` are handled as uvicorn does.

It also answers a response with a Content-Length in one transport write instead of two (head, then
body): see ``_HeadCoalescingTransport``; and it bounds what a connection may cost before its request
reaches the app (server/http_limits.py): a head larger than ``max_header_bytes`` or with more than
``max_headers`` lines gets 431, a head not complete within ``header_timeout_seconds`` or a body that
stalls ``body_timeout_seconds`` between chunks gets 408 (or a plain close once an answer has begun).
Bytes are counted per callback and per received chunk, and at most one timer runs: O(1) per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from llmserve.server.http_limits import DEFAULT_LIMITS, LINGER_SECONDS, HttpLimits, error_response

_FRAMING_HEADERS = (b"content-length", b"transfer-encoding")


class _HeadCoalescingTransport:
    """A request cycle's transport that holds a Content-Length response's head until its body.

    Why: uvicorn writes the status line and headers, then the body, as two ``transport.write`` calls,
    i.e. two ``send`` syscalls per JSON answer (about 10% of a single-client request's time). A head
    with Content-Length is held and written together with the first body bytes, which the app sends
    right after it. A chunked (streamed) head is written at once, so SSE clients get their headers
    before the first event as before. ``close`` writes a held head first, so a response the app
    abandons after its start goes out exactly as uvicorn would have sent it (head, then close). A
    response that completes with no body write (uvicorn drops the body of a HEAD response) has its
    head written at completion, before the next pipelined request starts.
    """

    __slots__ = ("_cycle", "_head", "_head_done", "_transport")

    def __init__(self, transport: Any, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._head_done = False
        on_response = cycle.on_response

        def write_head_then_complete() -> None:
            self.flush()
            on_response()

        cycle.on_response = write_head_then_complete

    def flush(self) -> None:
        """Writes a held head (the response completed without writing a body)."""
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data = self._head + data
            self._head = None
        elif not self._head_done and self._cycle.response_started:
            # The first write after the start is the head (a 100 Continue is written before it).
            self._head_done = True
            if self._cycle.chunked_encoding is False:
                self._head = data
                return
        self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class H2cTolerantHttpToolsProtocol(HttpToolsProtocol):
    """Serves a request that offers a non-WebSocket upgrade as the HTTP/1.1 request it also is."""

    def __init__(self, *args: Any, limits: HttpLimits = DEFAULT_LIMITS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ignoring_upgrade = False  # the current request offered an upgrade we decline
        self._replaying = False  # the fresh parser is reading the synthetic head
        self._limits = limits
        self._in_head = True  # a head is being received (a fresh connection waits for its first)
        self._head_bytes = 0  # request-line and header bytes the parser has handed over
        self._header_count = 0
        self._head_buffered = 0  # bytes received since the head began, while it is incomplete
        self._head_too_large = False
        self._reading_body = False  # the head is complete, the body is not
        self._last_body_data = 0.0
        self._body_started = 0.0  # when the body began, or the server last held it back
        self._body_bytes = 0  # body bytes since then
        self._timer: asyncio.TimerHandle | None = None  # the head timer, or the body one
        self._rejected = False  # answered 431 or 408: what else arrives is discarded

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer = self.loop.call_later(self._limits.header_timeout_seconds, self._on_head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        if not self._replaying:
            self._in_head = True
            self._head_bytes = self._header_count = self._head_buffered = 0
            super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if not self._replaying:
            self._head_bytes += len(url)
            if self._head_bytes > self._limits.max_header_bytes:
                self._head_too_large = True
                raise ValueError("request head too large")
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._replaying:
            self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
            self._header_count += 1
            if (
                self._head_bytes > self._limits.max_header_bytes
                or self._header_count > self._limits.max_headers
            ):
                self._head_too_large = True
                raise ValueError("request head too large")
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._replaying:
            self._replaying = False
            # The original head's keep-alive came from a parser that saw an upgrade; this one did not.
            self.cycle.keep_alive = self.scope["http_version"] != "1.0" and self.parser.should_keep_alive()
            return
        self._in_head = False
        self._reading_body = True
        self._body_started, self._body_bytes = self.loop.time(), 0
        self._cancel_timer()
        self._ignoring_upgrade = (
            self.parser.should_upgrade()
            and not self._should_upgrade()
            and self.parser.get_method() != b"CONNECT"
        )
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # Every cycle, pipelined ones included, starts here before its app runs.
        cycle.transport = _HeadCoalescingTransport(cycle.transport, cycle)  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)

    def on_message_complete(self) -> None:
        if self._ignoring_upgrade:
            return  # llhttp skipped the body: the replay reads it and completes the message
        self._reading_body = False
        self._cancel_timer()  # a body timer left behind would keep the next head's timer from starting
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return  # lingering after 431: read and drop, so closing does not reset the answer away
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_buffered += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._reading_body = False
            if self._ignoring_upgrade:
                self._read_body_without_upgrade(data[exc.args[0] :])
            elif self._should_upgrade():
                self._cancel_timer()
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._head_too_large:
                self._reject(431, "Request header fields too large.")
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        self._watch_incomplete_message()

    def _watch_incomplete_message(self) -> None:
        """Bounds a head or body that this chunk left incomplete (nothing to do for a whole request)."""
        if self._in_head:
            if self._head_buffered > self._limits.max_header_bytes:
                self._reject(431, "Request header fields too large.")
            elif self._timer is None:
                self._timer = self.loop.call_later(self._limits.header_timeout_seconds, self._on_head_timeout)
        elif self._reading_body:
            self._last_body_data = self.loop.time()
            if self._timer is None:
                self._timer = self.loop.call_later(self._limits.body_timeout_seconds, self._on_body_timeout)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def _on_head_timeout(self) -> None:
        self._timer = None
        if self._in_head:
            self._reject(408, "Request head not received in time.")

    def _on_body_timeout(self) -> None:
        self._timer = None
        if not self._reading_body or self.cycle is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            # The server, not the client, is holding the body back: neither the stall nor the rate counts.
            self._last_body_data = self._body_started = now
            self._body_bytes = 0
        if self._too_slow(now):
            self._reject(408, "Request body arriving too slowly.")
            return
        idle = now - self._last_body_data
        if idle < self._limits.body_timeout_seconds:
            self._timer = self.loop.call_later(
                self._limits.body_timeout_seconds - idle, self._on_body_timeout
            )
            return
        self._reject(408, "Request body not received in time.")

    def _too_slow(self, now: float) -> bool:
        """A trickle that never stalls a whole body_timeout (a byte every 29 s) still must not hold the
        connection forever: past body_timeout_seconds, the average rate must reach the minimum."""
        elapsed = now - self._body_started
        minimum = self._limits.min_body_bytes_per_second
        return (
            minimum > 0
            and elapsed >= self._limits.body_timeout_seconds
            and self._body_bytes < minimum * elapsed
        )

    def _reject(self, status: int, message: str) -> None:
        """Answers ``status`` unless an answer is under way, then closes (after a short linger)."""
        self._rejected = True
        self._cancel_timer()
        self.logger.warning("%s (%d)", message, status)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # receive() gets http.disconnect; send() drops the app's answer
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        self.transport.write(error_response(status, message, self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client's EOF ends the linger early (eof_received)
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _read_body_without_upgrade(self, rest: bytes) -> None:
        self._ignoring_upgrade = False
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3, which uvicorn allows
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn does
        self._replaying = True
        self.data_received(self._framing_head() + rest)

    def _framing_head(self) -> bytes:
        """A head that frames the body exactly as the original did, without the upgrade offer."""
        lines = [b"POST / HTTP/" + self.scope["http_version"].encode("ascii") + b"\r\n"]
        for name, value in self.headers:
            if name in _FRAMING_HEADERS:
                lines.append(name + b": " + value + b"\r\n")
            elif name == b"connection":
                tokens = [t.strip() for t in value.split(b",") if t.strip().lower() != b"upgrade"]
                if any(tokens):
                    lines.append(b"connection: " + b", ".join(t for t in tokens if t) + b"\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)
