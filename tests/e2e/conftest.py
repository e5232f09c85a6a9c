"""E2E tier: a real ``llmserve serve`` process (``tests.live_server``) driven over real sockets.

Each module is marked ``e2e`` (``pytestmark``); ``-m 'not e2e'`` deselects the tier.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.live_server import LiveServer


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        yield client


@pytest.fixture
def openai_client(live_server: LiveServer) -> Iterator[OpenAI]:
    """The official SDK as a user configures it: only base_url changes; no retries hide a failure."""
    with OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture
async def async_openai_client(live_server: LiveServer) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=60)
    async with client:
        yield client
