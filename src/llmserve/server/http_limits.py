"""What one connection may cost before the app sees a request: head size, header count, read timeouts.

Why: uvicorn's httptools protocol buffers a request head without bound (one 64 MB header was answered
200; 16 such connections took the server to 1.43 GB) and waits forever for a head or a body that a slow
client never finishes. ``H2cTolerantHttpToolsProtocol`` enforces these while it parses; h11 gets the
head size as uvicorn's ``h11_max_incomplete_event_size`` (h11 answers 400 instead of 431, and has no
read timeouts of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmserve.config import ServerSettings

# After answering 431 the connection keeps reading (and discarding) this long before it closes: closing
# with unread bytes makes the kernel send a reset, and a client that gets one may lose the answer.
LINGER_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    min_body_bytes_per_second: int = 1024

    @classmethod
    def from_settings(cls, server: ServerSettings) -> HttpLimits:
        return cls(
            max_header_bytes=server.max_header_bytes,
            max_headers=server.max_headers,
            header_timeout_seconds=server.header_timeout_seconds,
            body_timeout_seconds=server.body_timeout_seconds,
            min_body_bytes_per_second=server.min_body_bytes_per_second,
        )


DEFAULT_LIMITS = HttpLimits()

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def error_response(status: int, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete ``Connection: close`` plain-text answer, as uvicorn writes its own 400."""
    body = message.encode("ascii")
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
    for name, value in default_headers:
        parts.extend([name, b": ", value, b"\r\n"])
    parts.append(b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body))
    parts.append(b"connection: close\r\n\r\n")
    parts.append(body)
    return b"".join(parts)
