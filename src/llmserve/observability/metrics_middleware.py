"""MetricsMiddleware: counts and times every HTTP request for ``llmserve_requests_total`` and
``llmserve_request_latency_seconds`` (pure ASGI, so streams are timed to their last byte)."""

from __future__ import annotations

import time
from collections.abc import Collection

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmserve.observability.context import current_model, received_at_var
from llmserve.observability.metrics import Metrics

UNMATCHED = "unmatched"  # the endpoint label of a request no route took (404s, redirects)


class MetricsMiddleware:
    """Labels: the route template (never the raw URL), the status sent, and the model group the
    pipeline put in ``current_model``. The scrape itself is not counted."""

    def __init__(self, app: ASGIApp, metrics: Metrics, skip_paths: Collection[str] = ("/metrics",)) -> None:
        self.app = app
        self.metrics = metrics
        self.skip_paths = frozenset(skip_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        # From the outermost middleware's clock when it has run: the body-size check and parsing count.
        started = received_at_var.get() or time.perf_counter()
        metrics = self.metrics
        metrics.refresh_state()
        token = current_model.set("")
        status = 500  # nothing sent: the error middleware outside answers 500
        model_seen = ""

        async def send_with_status(message: Message) -> None:
            nonlocal status, model_seen
            if message["type"] == "http.response.start":
                status = message["status"]
            # A streaming body runs in a task of its own: a model set there is visible only here.
            model_seen = model_seen or current_model.get()
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            model = current_model.get() or model_seen
            current_model.reset(token)
            metrics.observe_request(model, endpoint_label(scope), str(status), time.perf_counter() - started)
            metrics.refresh_state()


def endpoint_label(scope: Scope) -> str:
    """The path template of the route that took the request, e.g. ``/v1/models/{model_id}``."""
    route = scope.get("route")
    if route is None:
        # A middleware inside this one may have passed a copy of the scope on (the router marks the
        # copy): match again, which costs a little, but only then.
        route = _match(scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _match(scope: Scope) -> BaseRoute | None:
    partial: BaseRoute | None = None
    for route in getattr(scope.get("app"), "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route  # type: ignore[no-any-return]
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial
