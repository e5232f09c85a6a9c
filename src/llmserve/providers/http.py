"""The one pooled HTTP client every remote provider shares, and what upstream failures mean.

All upstream I/O goes through ``UpstreamHTTP`` so timeouts, error classification and the choice of
client library live in one file. Failures become ``UpstreamError`` (retryable or not, with the
upstream's ``Retry-After``) or, for a request the upstream refuses as invalid, ``InvalidRequest`` /
``ContextLengthExceeded``, which the router never retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from llmserve.errors import ContextLengthExceeded, InvalidRequest, UpstreamError
from llmserve.observability.tracing import inject_trace_context
from llmserve.retry_timing import parse_retry_after

# Statuses where another try may succeed; any other 4xx is the request's fault and is never retried.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
CREDENTIAL_STATUSES = frozenset({401, 403})
# An SSE line may carry large tool-call arguments; one this long is a broken upstream, not a model.
MAX_SSE_LINE_BYTES = 16 << 20


@dataclass(frozen=True)
class Timeouts:
    connect: float
    total: float  # whole call when not streaming
    first_token: float  # streaming: to the first event
    idle: float  # streaming: between events


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str


class UpstreamHTTP:
    """One connection pool per process (built in the app lifespan, closed on shutdown).

    aiohttp, not httpx: on this project's benchmark (docs/benchmarks.md, "Upstream HTTP client")
    aiohttp served 3x the requests/s of httpx one at a time and 10-26x at 32-128 concurrent, at a
    quarter of the CPU per request; httpcore's pool bookkeeping grows with the number of connections.
    The session is created on first use, inside the running event loop, as aiohttp requires.
    """

    def __init__(self, *, max_connections: int = 1000) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=None),
                # SSE lines with large tool arguments must not hit aiohttp's 64 KiB line limit.
                read_bufsize=1 << 20,
                max_line_size=1 << 20,
                max_field_size=1 << 16,
                auto_decompress=True,
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post_json(
        self,
        url: str,
        payload: Mapping[str, Any],
        headers: Mapping[str, str],
        *,
        timeouts: Timeouts,
        deployment: str,
    ) -> Any:
        """POST ``payload`` as JSON and return the decoded JSON body of a 2xx answer."""
        try:
            async with (
                asyncio.timeout(timeouts.total),
                self._client().post(
                    url,
                    data=orjson.dumps(payload),
                    headers=inject_trace_context({**headers, "content-type": "application/json"}),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
                    allow_redirects=False,
                ) as response,
            ):
                body = await response.read()
        except aiohttp.ClientError as exc:  # before TimeoutError: aiohttp's timeouts subclass both
            raise transport_error(exc, deployment) from exc
        except TimeoutError as exc:
            raise _timeout(deployment, f"no answer within {timeouts.total:g}s") from exc
        if response.status >= 400:
            raise status_error(response.status, body, response.headers, deployment)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{deployment}: the upstream answered with malformed JSON",
                kind="protocol",
                retryable=True,
                deployment=deployment,
            ) from exc

    async def stream_sse(
        self,
        url: str,
        payload: Mapping[str, Any],
        headers: Mapping[str, str],
        *,
        timeouts: Timeouts,
        deployment: str,
    ) -> AsyncGenerator[SSEEvent, None]:
        """POST and yield the Server-Sent Events of the answer; closing the iterator closes the connection,
        which is how a client's cancel reaches the upstream."""
        first_deadline = time.monotonic() + timeouts.first_token
        try:
            async with asyncio.timeout(timeouts.first_token):
                response = await self._client().post(
                    url,
                    data=orjson.dumps(payload),
                    headers=inject_trace_context(
                        {**headers, "content-type": "application/json", "accept": "text/event-stream"}
                    ),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
                    allow_redirects=False,
                )
        except aiohttp.ClientError as exc:
            raise transport_error(exc, deployment) from exc
        except TimeoutError as exc:
            raise _timeout(deployment, f"no answer within {timeouts.first_token:g}s") from exc
        finished = False
        try:
            if response.status >= 400:
                body = await _read_capped(response)
                raise status_error(response.status, body, response.headers, deployment)
            async for event in _sse_events(response, deployment, first_deadline, timeouts.idle):
                yield event
            finished = True
        finally:
            if finished:
                response.release()  # read to the end: the connection goes back to the pool
            else:
                response.close()  # abandoned mid-answer: drop the connection so the upstream stops


def _timeout(deployment: str, what: str) -> UpstreamError:
    return UpstreamError(f"{deployment}: {what}", kind="timeout", retryable=True, deployment=deployment)


async def _read_capped(response: aiohttp.ClientResponse, limit: int = 65536) -> bytes:
    try:
        return await response.content.read(limit)
    except aiohttp.ClientError:
        return b""  # the status already says what went wrong


async def _sse_events(
    response: aiohttp.ClientResponse, deployment: str, first_deadline: float, idle: float
) -> AsyncIterator[SSEEvent]:
    """Parses SSE (event/data fields, a blank line dispatches). The first event must arrive by
    ``first_deadline`` (time to first token), each later read within ``idle`` seconds of the last.

    It reads whatever the socket has delivered and splits the lines itself: one await and one timer
    per network read instead of per line, which for an upstream that sends many events in one
    packet was most of the cost of relaying a stream."""
    fields = _EventFields()
    dispatched = False
    pending = b""
    while True:
        wait = idle if dispatched else first_deadline - time.monotonic()
        chunk = await _read_within(response, deployment, wait, dispatched)
        lines, pending = _complete_lines(pending, chunk, deployment)
        for raw in lines:
            event = fields.feed(raw.decode("utf-8", "replace").rstrip("\r"))
            if event is not None:
                dispatched = True
                yield event
        if not chunk:  # end of the body: an event without its closing blank line still counts
            if (last := fields.dispatch()) is not None:
                yield last
            return


async def _read_within(
    response: aiohttp.ClientResponse, deployment: str, wait: float, dispatched: bool
) -> bytes:
    """What the socket has delivered (b"" at the end of the body), within ``wait`` seconds."""
    try:
        async with asyncio.timeout(max(wait, 0.0)):
            return await response.content.readany()
    except TimeoutError as exc:
        what = "the stream stalled: no event" if dispatched else "no first token"
        raise _timeout(deployment, f"{what} within {max(wait, 0.0):.3g}s") from exc
    except aiohttp.ClientError as exc:
        raise transport_error(exc, deployment) from exc


def _complete_lines(pending: bytes, chunk: bytes, deployment: str) -> tuple[list[bytes], bytes]:
    """The whole lines of ``pending + chunk`` and the unfinished rest; at the end of the body
    (``chunk`` empty) a last line without its newline is whole too."""
    if not chunk:
        return ([pending] if pending else []), b""
    *lines, rest = (pending + chunk).split(b"\n")
    if len(rest) > MAX_SSE_LINE_BYTES:
        raise UpstreamError(
            f"{deployment}: an SSE line is longer than {MAX_SSE_LINE_BYTES} bytes",
            kind="protocol",
            retryable=True,
            deployment=deployment,
        )
    return lines, rest


class _EventFields:
    """The ``event`` and ``data`` fields of the SSE event being read; a blank line dispatches it."""

    __slots__ = ("data", "event")

    def __init__(self) -> None:
        self.event: str | None = None
        self.data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        """Takes one decoded line; returns the event a blank line completes, if it carried data."""
        if not line:
            return self.dispatch()
        if line.startswith(":"):
            return None  # comment / keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self.data.append(value)
        elif field == "event":
            self.event = value
        return None

    def dispatch(self) -> SSEEvent | None:
        """The event read so far (None when it has no data), and a fresh start for the next one."""
        event = SSEEvent(self.event, "\n".join(self.data)) if self.data else None
        self.event, self.data = None, []
        return event


def transport_error(exc: aiohttp.ClientError, deployment: str) -> UpstreamError:
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return _timeout(deployment, f"timed out ({type(exc).__name__})")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return UpstreamError(
            f"{deployment}: the upstream closed the connection mid-answer",
            kind="protocol",
            retryable=True,
            deployment=deployment,
        )
    what = "cannot reach the upstream" if isinstance(exc, aiohttp.ClientConnectorError) else "connection lost"
    return UpstreamError(
        f"{deployment}: {what} ({type(exc).__name__}: {exc})",
        kind="connect",
        retryable=True,
        deployment=deployment,
    )


def upstream_message(body: bytes) -> tuple[str, str | None]:
    """The message and code of an OpenAI- or Anthropic-style error body, or its raw text."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:500].decode("utf-8", "replace").strip() or "(empty body)", None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return str(error.get("message") or decoded), str(code) if code else None
    if isinstance(error, str):
        return error, None
    return str(decoded)[:500], None


def status_error(status: int, body: bytes, headers: Mapping[str, str], deployment: str) -> Exception:
    message, code = upstream_message(body)
    if status in RETRYABLE_STATUSES:
        return UpstreamError(
            f"{deployment}: upstream answered {status}: {message}",
            kind="status",
            retryable=True,
            upstream_status=status,
            retry_after=parse_retry_after(headers.get("retry-after"), headers.get("retry-after-ms")),
            deployment=deployment,
        )
    if status in CREDENTIAL_STATUSES:
        # Our key, not the client's request: another deployment or group may still answer.
        return UpstreamError(
            f"{deployment}: upstream refused the gateway's credentials ({status}): {message}",
            kind="status",
            retryable=False,
            upstream_status=status,
            deployment=deployment,
        )
    if status < 500:
        lowered = message.lower()
        if (
            code == "context_length_exceeded"
            or "maximum context length" in lowered
            or "prompt is too long" in lowered
        ):
            return ContextLengthExceeded(message, param="messages")
        return InvalidRequest(message, code=code)
    return UpstreamError(
        f"{deployment}: upstream answered {status}: {message}",
        kind="status",
        retryable=True,
        upstream_status=status,
        deployment=deployment,
    )
