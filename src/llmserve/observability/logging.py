"""Logging setup: one format, a request id on every line."""

from __future__ import annotations

import logging
import re

from llmserve.api.middleware import request_id_var

# ?api_key=<secret> (WebSocket and EventSource clients) must never reach a log line.
_QUERY_KEY = re.compile(r"(api_key=)[^&\s\"']+")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RedactKeysFilter(logging.Filter):
    """Masks API keys passed in query strings (uvicorn's access log prints the full path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                _QUERY_KEY.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str) and "api_key=" in record.msg:
            record.msg = _QUERY_KEY.sub(r"\1[redacted]", record.msg)
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
    )
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactKeysFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
