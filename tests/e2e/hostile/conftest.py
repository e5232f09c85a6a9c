"""The hostile-client tier: one real ``llmserve serve`` (the bundled model, default limits except
2-second read timeouts so slow clients are dropped within a short test) attacked over loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import LiveServer, running_server

# The tier's read timeouts: the defaults (10 s for a head, 30 s of body silence) would make the slow
# client attacks last a minute each; the mechanism is the same.
READ_TIMEOUT_S = 2.0


@pytest.fixture(scope="package")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "LLMSERVE_SERVER__HEADER_TIMEOUT_SECONDS": str(READ_TIMEOUT_S),
        "LLMSERVE_SERVER__BODY_TIMEOUT_SECONDS": str(READ_TIMEOUT_S),
    }
    with running_server(tmp_path_factory.mktemp("hostile-data"), extra_env=env) as server:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            # The model loads on first use: load it before any attack measures anything.
            warm = client.post("/v1/chat/completions", json=_chat("hi", 4))
            assert warm.status_code == 200, warm.text
        yield server


def _chat(content: str, max_tokens: int) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
