"""A server's log lines are written by a thread, off the event loop: they must come out the same (request
id of the request that logged them, keys redacted, in order). That none is lost when the process exits or
forks is in tests/e2e/observability/test_logging_background.py."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from llmserve.observability.context import request_id_var
from llmserve.observability.logging import configure_logging, stop_log_writer

SECRET = "sk-llm-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        stop_log_writer()
        root.handlers = handlers
        root.setLevel(level)


def test_background_lines_keep_their_request_id_order_and_redaction(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, background=True)
    log = logging.getLogger("llmserve.test")
    for n in range(3):
        token = request_id_var.set(f"req-{n}")
        try:
            log.info("call %d with %s", n, f"/chat/ws?api_key={SECRET}", extra={"key": SECRET})
        finally:
            request_id_var.reset(token)  # the writer formats later, outside the request's context
    log.debug("below the level")

    stop_log_writer()  # writes what is queued

    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["req-0", "req-1", "req-2"]
    assert [line["message"] for line in lines] == [
        f"call {n} with /chat/ws?api_key=[redacted]" for n in range(3)
    ]
    assert SECRET not in stream.getvalue()


def test_mutable_arguments_are_logged_as_they_were_at_the_call(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream=stream, background=True)
    models = ["a"]
    logging.getLogger("llmserve.test").info("models: %s", models)
    models.append("b")

    stop_log_writer()

    assert "models: ['a']" in stream.getvalue()
