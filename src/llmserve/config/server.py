"""The HTTP server: where it listens, how it parses, and who may call it without a key."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmserve.config.base import StrictModel

DEFAULT_PORT = 8888


class ServerSettings(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Larger request bodies get 413")
    cors_origins: list[str] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # httptools through llmserve's own protocol class (server/http_protocol.py): uvicorn's stock one drops
    # the body of a request that offers an h2c upgrade, as every JDK HttpClient does (Kludex/uvicorn#2722);
    # ours ignores the offer as h11 does. h11 stays selectable: pure Python, about 20% more CPU a request.
    http: Literal["h11", "httptools", "auto"] = Field(
        "httptools",
        description="HTTP/1.1 parser: httptools (fast, h2c offers ignored) or h11; auto: httptools",
    )
    # A request head is parsed in memory before any middleware runs: without these a client could send
    # one endless header (each connection's buffer grows) or hold connections open forever.
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="Larger request heads (request line + headers) get 431 and a close"
    )
    max_headers: int = Field(100, ge=1, description="Requests with more header lines get 431 and a close")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A connection that has not sent a complete head by then gets 408 and a close"
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="A request body stalling this long between chunks: 408 (if unanswered), close",
    )
    min_body_bytes_per_second: int = Field(
        1024,
        ge=0,
        description="A body arriving slower than this on average, once body_timeout_seconds have passed, "
        "gets 408: one byte every 29 s never stalls 30 s but would hold its connection forever; 0: off",
    )


class AuthSettings(StrictModel):
    allow_remote_without_key: bool = Field(
        False, description="Bind beyond loopback even without a master key (everyone may call)"
    )
