"""Hand-written fakes for the provider unit tests (the tests against loopback upstreams are e2e)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any, NoReturn

from llmserve.providers.http import SSEEvent, Timeouts, UpstreamHTTP

UNUSED_API_BASE = "http://127.0.0.1:9"  # the discard port: nothing is ever sent there


class NoCallsHTTP(UpstreamHTTP):
    """An upstream client that records every call it is asked to make and makes none."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def _refuse(self, url: str) -> NoReturn:
        self.calls.append(url)
        raise AssertionError(f"the provider called its upstream ({url})")

    async def post_json(
        self,
        url: str,
        payload: Mapping[str, Any],
        headers: Mapping[str, str],
        *,
        timeouts: Timeouts,
        deployment: str,
    ) -> Any:
        self._refuse(url)

    async def stream_sse(
        self,
        url: str,
        payload: Mapping[str, Any],
        headers: Mapping[str, str],
        *,
        timeouts: Timeouts,
        deployment: str,
    ) -> AsyncGenerator[SSEEvent, None]:
        self._refuse(url)
        yield  # an async generator, as the real one is
