"""Fuzz tier: schemathesis over the whole OpenAPI document, against the real app in-process.

Two apps, each over its own SQLite file and the bundled tiny model (loaded before the first case, so
a 503 is a finding, not a model still loading): one with authentication off (no master key) and one
with it on (every case carries the master key; the ``ignored_auth`` check replays cases without it
and expects a 401).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.python import asgi
from starlette.types import Receive, Scope, Send

from llmserve.app import create_app
from llmserve.config import BUNDLED_MODEL_ID, Settings, load_settings

MASTER = "master-key-for-the-fuzz-tier-0123456789"
READY_TIMEOUT_SECONDS = 120.0
# Requests sent per kind of run (``auth off``, ``auth on``, ``stateful``): the tier's size, printed at
# the end of the run so that a change which quietly stops generating cases shows.
CASES = pytest.StashKey[Counter[str]]()
ANSWERS = pytest.StashKey[Counter[tuple[str, str]]]()


def fuzz_settings(data_dir: Path, *, secured: bool) -> Settings:
    extra: dict[str, Any] = {"master_key": MASTER} if secured else {}
    return load_settings(
        data_dir=str(data_dir),
        server={"max_body_bytes": 64 * 1024},
        # A short context and a small budget per request: the fuzzer checks an answer's shape, not
        # its length, and a 2-core CI machine must get through every case in a few minutes (a
        # request without max_tokens may generate what the context leaves, n times).
        models=[
            {
                "name": BUNDLED_MODEL_ID,
                "model": BUNDLED_MODEL_ID,
                "context_window": 128,
                "default_max_tokens": 64,
            }
        ],
        engine={"preload": True, "max_total_tokens_per_request": 256, "request_timeout_seconds": 10},
        **extra,
    )


class LongLived:
    """The app, with its lifespan run once for the whole module instead of once per test.

    schemathesis starts an ASGI app's lifespan at its first request and stops it after every test
    item (one per operation): every operation would reload the model and reopen the database. This
    wrapper enters the app's lifespan at the first startup it is sent, acknowledges every later
    startup and shutdown, and leaves the lifespan to ``close``.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        if self._lifespan is None:
            self._loop = asyncio.get_running_loop()
            self._lifespan = self.app.router.lifespan_context(self.app)
            await self._lifespan.__aenter__()
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown: the app stays up until close()
        await send({"type": "lifespan.shutdown.complete"})

    def close(self) -> None:
        """End the lifespan on the event loop it runs on (schemathesis's, in its own thread)."""
        asgi.shutdown_lifespans()
        if self._lifespan is not None and self._loop is not None:
            ending = self._lifespan.__aexit__(None, None, None)
            asyncio.run_coroutine_threadsafe(ending, self._loop).result(timeout=60)


def _wait_ready(app: LongLived, headers: dict[str, str]) -> None:
    """The first request starts the app's lifespan (the model loads); then /ready turns 200."""
    ready = schemathesis.openapi.from_dict(app.app.openapi())["/ready"]["GET"]
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while (status := ready.Case().call(app=app, headers=headers).status_code) != 200:
        assert time.monotonic() < deadline, f"/ready still answers {status}"
        time.sleep(0.2)


def _app(tmp: pytest.TempPathFactory, *, secured: bool) -> Iterator[LongLived]:
    app = LongLived(create_app(fuzz_settings(tmp.mktemp("fuzz"), secured=secured)))
    _wait_ready(app, {"authorization": f"Bearer {MASTER}"} if secured else {})
    yield app
    app.close()  # closes the database and the model's engine


@pytest.fixture(scope="module")
def open_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LongLived]:
    yield from _app(tmp_path_factory, secured=False)


@pytest.fixture(scope="module")
def secured_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LongLived]:
    yield from _app(tmp_path_factory, secured=True)


@pytest.fixture(scope="session")  # one per run; hypothesis refuses function-scoped fixtures
def cases_sent(request: pytest.FixtureRequest) -> Counter[str]:
    counts: Counter[str] = request.config.stash.setdefault(CASES, Counter())
    return counts


@pytest.fixture(scope="session")
def answers(request: pytest.FixtureRequest) -> Counter[tuple[str, str]]:
    """2xx answers per (operation, media type): what the cases reached beyond refusals."""
    counts: Counter[tuple[str, str]] = request.config.stash.setdefault(ANSWERS, Counter())
    return counts


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    counts = config.stash.get(CASES, None)
    if counts:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(counts.items()))
        terminalreporter.write_line(f"fuzz tier: {sum(counts.values())} cases sent ({kinds})")
