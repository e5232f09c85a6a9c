"""A real uvicorn server for one test module, run in a thread on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from tests.live_server import free_port
from tests.polling import wait_until


def serve_in_thread(app: Any, *, start_within: float = 10, **options: Any) -> Iterator[int]:
    """Yields the port once uvicorn is listening; stops the server after the ``yield``."""
    port = free_port()
    # log_config=None: uvicorn's own config would detach its loggers from the root for later tests.
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, within=start_within, interval=0.02, message="uvicorn did not start")
    yield port
    server.should_exit = True
    thread.join(10)
