"""How ``llmserve serve`` runs its process: uvicorn's HTTP parser and the garbage collector's settings.

Both are per-process choices made once before serving (in the single process, or in each worker), kept
out of the CLI so the reasons sit next to the code.
"""

from __future__ import annotations

import functools
import gc
from typing import TYPE_CHECKING, Any

from llmserve.server.http_limits import DEFAULT_LIMITS, HttpLimits

if TYPE_CHECKING:
    from llmserve.config import ServerSettings

# Allocations between young-generation collections (CPython's default: 700). A request allocates a few
# thousand objects that die with it; collecting every 700 allocations found few of them garbage yet.
GC_YOUNG_THRESHOLD = 20_000


def tune_gc_for_serving() -> None:
    """Tune the cyclic garbage collector for serving, once the app is built.

    Why: its full passes walk every tracked object, and a request allocates enough (validated models,
    log records, aiohttp's objects) to trigger them often. Freezing moves the few hundred thousand
    objects start-up left behind (FastAPI, pydantic, SQLAlchemy, aiohttp) out of its sight; they live
    as long as the process anyway. With a larger young-generation threshold, 7% (freeze) plus 5%
    (threshold) less CPU per proxied request on the gateway benchmark (docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)


def uvicorn_http_protocol(name: str, limits: HttpLimits | None = None) -> Any:
    """uvicorn's ``http=``: h11 by name; httptools as llmserve's subclass that reads the body of a request
    offering ``Upgrade: h2c`` (uvicorn's own drops it). ``auto`` falls back to h11 without httptools.
    ``limits`` other than the defaults are bound with a ``functools.partial``, which, unlike a class made
    at run time, pickles into uvicorn's worker processes."""
    if name == "h11":
        return name
    try:
        from llmserve.server.http_protocol import H2cTolerantHttpToolsProtocol
    except ImportError:
        if name == "auto":
            return "h11"
        raise
    if limits is None or limits == DEFAULT_LIMITS:
        return H2cTolerantHttpToolsProtocol
    return functools.partial(H2cTolerantHttpToolsProtocol, limits=limits)


def uvicorn_server_options(server: ServerSettings) -> dict[str, Any]:
    """The uvicorn options that come from ``server.*``: the parser, and its head size limit for h11."""
    return {
        "http": uvicorn_http_protocol(server.http, HttpLimits.from_settings(server)),
        "h11_max_incomplete_event_size": server.max_header_bytes,
    }
