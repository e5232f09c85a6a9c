"""Per-request context variables: set by the outer middleware and the pipeline, read by logs, metrics
and errors. The ground floor of observability: this module imports nothing of the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# perf_counter() when the request reached llmserve (the outermost middleware): the gateway-overhead
# header counts from here, so parsing, validation and middleware are in it.
received_at_var: ContextVar[float | None] = ContextVar("received_at", default=None)
# The model group a request resolved to, once the pipeline knows it: labels metrics and error logs.
current_model: ContextVar[str] = ContextVar("llmserve_current_model", default="")
# Seconds this request spent waiting for a local model to load outside any upstream call (the
# context fitting in front of routing needs the loaded tokenizer): the gateway-overhead header leaves
# it out, since loading a model is not llmserve's per-request cost. Waits inside an upstream call are
# already upstream time; the router takes them back out of here (see routing/router.py).
model_load_wait_var: ContextVar[float] = ContextVar("llmserve_model_load_wait", default=0.0)


def note_model_load_wait(seconds: float) -> None:
    model_load_wait_var.set(model_load_wait_var.get() + seconds)


# What must run once the HTTP request's answer is over, whatever happened to it (the outer middleware
# sets a list per request and runs it at the end): a stream opened for a client that left before its
# first byte was read holds an admission slot and an upstream connection that nothing else frees.
Cleanup = Callable[[], Awaitable[None]]
request_cleanups_var: ContextVar[list[Cleanup] | None] = ContextVar("llmserve_request_cleanups", default=None)


def on_request_end(cleanup: Cleanup) -> None:
    """Run ``cleanup`` when the current HTTP request ends (nothing, outside one)."""
    cleanups = request_cleanups_var.get()
    if cleanups is not None:
        cleanups.append(cleanup)
