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
body): see ``_HeadCoalescingTransport``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ignoring_upgrade = False  # the current request offered an upgrade we decline
        self._replaying = False  # the fresh parser is reading the synthetic head

    def on_message_begin(self) -> None:
        if not self._replaying:
            super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if not self._replaying:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._replaying:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._replaying:
            self._replaying = False
            # The original head's keep-alive came from a parser that saw an upgrade; this one did not.
            self.cycle.keep_alive = self.scope["http_version"] != "1.0" and self.parser.should_keep_alive()
            return
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
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as exc:
            if self._ignoring_upgrade:
                self._read_body_without_upgrade(data[exc.args[0] :])
            elif self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

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
