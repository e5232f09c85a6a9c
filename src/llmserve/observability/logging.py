"""Logging setup: a request id on every line, secrets redacted, text for people or JSON for machines.

Plain stdlib ``logging`` (structlog is not a dependency, and every library we run, uvicorn included,
logs through stdlib anyway): one handler on the root logger, two filters, one of two formatters.
Structured fields travel as ``extra={...}``; the JSON formatter writes them as keys of the line's
object, the text formatter appends them as ``key=value`` so they are not lost in a terminal either.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
from collections import deque
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

from llmserve.observability.context import request_id_var

LogFormat = Literal["text", "json"]

# Query parameters whose values never reach a log line: ?api_key= (WebSocket and EventSource clients'
# key), and what EventSource clients put in the URL for lack of a body: the prompt and the
# conversation id (a capability: whoever holds it and the key reads the history).
_PRIVATE_QUERY = ("api_key=", "conversation_id=", "prompt=")
_QUERY_KEY = re.compile(r"((?<![A-Za-z0-9_])(?:api_key|conversation_id|prompt)=)[^&\s\"']+")
# A whole llmserve secret (sk-llm- + 43 urlsafe characters); the 12-character shown prefix stays.
_SECRET = re.compile(r"(sk-llm-)[A-Za-z0-9_-]{20,}")
# What every LogRecord has (plus what Formatter.format adds): anything else came in through ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id", "taskName"}
    | {"color_message"}  # uvicorn's copy of its message with terminal colour codes
)
_ACCESS_LOGGER = "uvicorn.access"
_ACCESS_ARGS = 5  # uvicorn's access line: client, method, path, HTTP version, status


def redact(text: str) -> str:
    """``text`` with API keys (in query strings, or whole llmserve secrets), and prompts and conversation
    ids in query strings, replaced by a marker."""
    if any(name in text for name in _PRIVATE_QUERY):
        text = _QUERY_KEY.sub(r"\1[redacted]", text)
    if "sk-llm-" in text:
        text = _SECRET.sub(r"\1[redacted]", text)
    return text


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed with ``extra={...}``."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


class RequestIdFilter(logging.Filter):
    """Stamps the current request id; an explicit ``extra={"request_id": ...}`` wins (work that outlives
    the request's context, such as a stream's last log line from a background task, passes its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        explicit = getattr(record, "request_id", None)
        record.request_id = explicit or request_id_var.get()
        return True


class RedactKeysFilter(logging.Filter):
    """Masks API keys in messages, arguments and extra fields (uvicorn's access log prints the full path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        for key, value in extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return (
        datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """uvicorn's access line as fields, so a log query can filter on path and status."""
    if (
        record.name != _ACCESS_LOGGER
        or not isinstance(record.args, tuple)
        or len(record.args) != _ACCESS_ARGS
    ):
        return {}
    client, method, path, _, status = record.args
    return {"client": client, "method": method, "path": path, "status": status}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        line.update(_access_fields(record))
        line.update(extra_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra value orjson does not know (a Path, an Enum member) is still written.
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL [request id] logger: message key=value ...`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = extra_fields(record)
        if not fields:
            return text
        head, newline, tail = text.partition("\n")  # fields stay on the first line, before a traceback
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        return f"{head} {pairs}{newline}{tail}"


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in '"=' for c in value)
        return value if plain else orjson.dumps(value).decode()
    if isinstance(value, (dict, list, tuple)):
        return orjson.dumps(value, default=str).decode()
    return str(value)


# Argument types whose text cannot change between the call and the listener formatting it later.
_IMMUTABLE_ARGS = (str, int, float, bool, bytes, type(None))


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Enqueues the record itself: the stock ``prepare`` formats it in the caller's thread (to make it
    picklable for a multiprocessing queue), which is the very cost this handler moves off the event loop.
    Only arguments that could change before the listener gets to them are rendered now."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        args = record.args
        if args and not (isinstance(args, tuple) and all(isinstance(a, _IMMUTABLE_ARGS) for a in args)):
            record.msg, record.args = record.getMessage(), None
        return record


# How long a logged line may wait for the writer thread. Waking it per line instead (queue.SimpleQueue)
# cost about 5% of a request's CPU in the caller, the futex wake-up of a sleeping thread on a busy VM.
_WRITE_INTERVAL_S = 0.05


class _BatchingQueue:
    """The queue between QueueHandler and QueueListener: ``put_nowait`` is a deque append that wakes no
    one, except for a warning or worse (seen at once) and the listener's stop sentinel; ``get`` looks
    again every ``_WRITE_INTERVAL_S``. A deque's append and popleft are atomic, so no lock is needed."""

    def __init__(self) -> None:
        self._items: deque[logging.LogRecord | None] = deque()
        self._wake = threading.Event()

    def put_nowait(self, item: logging.LogRecord | None) -> None:
        self._items.append(item)
        if item is None or item.levelno >= logging.WARNING:
            self._wake.set()

    def clear(self) -> None:
        self._items.clear()

    def get(self, block: bool = True) -> logging.LogRecord | None:
        while True:
            try:
                return self._items.popleft()
            except IndexError:
                if not block:
                    raise queue.Empty from None
            self._wake.wait(_WRITE_INTERVAL_S)
            self._wake.clear()  # a set() racing this is harmless: the loop looks at the deque first


_listener: logging.handlers.QueueListener | None = None


def _skip_unused_record_fields() -> None:
    """Stop every LogRecord from collecting what no llmserve line prints: the caller's file, line and
    function (a walk up the stack per record), thread, process and multiprocessing names. The
    stdlib's documented switches (logging's "Optimization" section); process-wide, so only for a
    server's own logging."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def stop_log_writer() -> None:
    """Write what is still queued and end the thread (at exit, or before logging is configured again)."""
    global _listener  # one listener per process, like the root logger it serves
    if _listener is not None:
        _listener.stop()
        _listener = None


def configure_logging(
    level: str,
    fmt: LogFormat = "text",
    *,
    stream: IO[str] | None = None,
    background: bool | None = None,
) -> None:
    """Route every logger (uvicorn's included: it runs with ``log_config=None``) to one handler.

    ``background`` (default: when writing to stderr, i.e. a server's own log) hands records to a
    thread that redacts, formats and writes them, so the event loop pays for an enqueue instead of
    formatting and a blocking write per line (10% of a request's CPU under load). The request id is
    still stamped in the caller's thread, where the request's context is; lines keep their order, and
    the thread is stopped at exit after writing everything queued. A caller-supplied stream is written
    synchronously unless asked otherwise, so what was logged is in it when the call returns.
    """
    global _listener
    stop_log_writer()
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    output = logging.StreamHandler(stream if stream is not None else sys.stderr)
    output.setFormatter(formatter)
    output.addFilter(RedactKeysFilter())
    handler: logging.Handler = output
    if background if background is not None else stream is None:
        _skip_unused_record_fields()
        records = _BatchingQueue()
        handler = _DeferredQueueHandler(records)
        handler.setFormatter(formatter)  # not used to format: says what the lines look like
        _listener = logging.handlers.QueueListener(records, output)
        _listener.start()
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())


def _restart_log_writer_in_child() -> None:
    # A forked child inherits the queue but not the thread: without one its lines would pile up unseen.
    # What was queued at the fork is the parent's to write.
    if _listener is not None:
        _listener.queue.clear()  # type: ignore[attr-defined]  # a _BatchingQueue
        _listener.start()


atexit.register(stop_log_writer)
os.register_at_fork(after_in_child=_restart_log_writer_in_child)
