"""Logging setup: a request id on every line, secrets redacted, text for people or JSON for machines.

Plain stdlib ``logging`` (structlog is not a dependency, and every library we run, uvicorn included,
logs through stdlib anyway): one handler on the root logger, two filters, one of two formatters.
Structured fields travel as ``extra={...}``; the JSON formatter writes them as keys of the line's
object, the text formatter appends them as ``key=value`` so they are not lost in a terminal either.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

from llmserve.api.middleware import request_id_var

LogFormat = Literal["text", "json"]

# ?api_key=<secret> (WebSocket and EventSource clients) must never reach a log line.
_QUERY_KEY = re.compile(r"(api_key=)[^&\s\"']+")
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
    """``text`` with API keys (in query strings, or whole llmserve secrets) replaced by a marker."""
    if "api_key=" in text:
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


def configure_logging(level: str, fmt: LogFormat = "text", *, stream: IO[str] | None = None) -> None:
    """Route every logger (uvicorn's included: it runs with ``log_config=None``) to one handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactKeysFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
