"""TracingMiddleware: the server span of each HTTP request, parent of every span the request starts.

Pure ASGI, installed only when tracing is on. It continues a client's W3C trace (``traceparent``/
``tracestate``), makes the tracing handle and the span current for the request, and ends the span
when the last body chunk has been sent, which for a stream is when the stream ends. A WebSocket gets
no server span (it may last hours); the spans of its messages continue the handshake's traceparent.

It must be the innermost middleware (``create_app`` adds it first): the route template that names
the span (``HTTP POST /v1/chat/completions``, ``HTTP GET /admin/keys/{key_id}``) is known only once
the router has matched, and the router writes it (``scope["route"]``) into the scope it was handed,
which a middleware in between may have replaced with a copy (JsonBodyMiddleware does).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmserve.observability.context import request_id_var
from llmserve.observability.tracing import TracingHandle, record_error

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

# Probes and scrapes would be most of the traces and say nothing.
UNTRACED_PATHS: Final = frozenset({"/health", "/ready", "/metrics"})


class TracingMiddleware:
    def __init__(
        self, app: ASGIApp, handle: TracingHandle, untraced_paths: Collection[str] = UNTRACED_PATHS
    ) -> None:
        # Imported here, not at module level: the SDK is the optional ``otel`` extra.
        from opentelemetry import context, trace

        self.app = app
        self.handle = handle
        self.untraced_paths = frozenset(untraced_paths)
        self._context = context
        self._trace = trace
        self._error = trace.Status(trace.StatusCode.ERROR)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.untraced_paths:
            await self._traced(scope, receive, send)
        elif scope["type"] == "websocket":
            token = self._context.attach(self._parent(scope))
            try:
                with self.handle.activate():
                    await self.app(scope, receive, send)
            finally:
                self._context.detach(token)
        else:
            await self.app(scope, receive, send)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "url.path": scope["path"],  # never the query string: EventSource clients put api_key there
            "url.scheme": scope.get("scheme", "http"),
        }
        if version := scope.get("http_version"):
            attributes["network.protocol.version"] = version
        if (request_id := request_id_var.get()) != "-":
            attributes["llmserve.request_id"] = request_id
        parent = self._parent(scope)
        server_span = self.handle.tracer.start_span(
            f"HTTP {method}", context=parent, kind=self._trace.SpanKind.SERVER, attributes=attributes
        )
        ended = False

        async def traced_send(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.start":
                self._record_response(server_span, scope, message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not ended:
                ended = True
                server_span.end()

        token = self._context.attach(self._trace.set_span_in_context(server_span, parent))
        try:
            with self.handle.activate():
                await self.app(scope, receive, traced_send)
        except BaseException as exc:
            self._name_by_route(server_span, scope)
            record_error(server_span, exc)
            raise
        finally:
            self._context.detach(token)
            if not ended:
                server_span.end()

    def _record_response(self, server_span: Span, scope: Scope, status: int) -> None:
        self._name_by_route(server_span, scope)
        server_span.set_attribute("http.response.status_code", status)
        if status >= 500:  # a 4xx is the client's error, not the server span's (HTTP conventions)
            server_span.set_status(self._error)

    @staticmethod
    def _name_by_route(server_span: Span, scope: Scope) -> None:
        """``HTTP <method> <route template>`` once the router has matched; a 404 keeps ``HTTP <method>``."""
        route = getattr(scope.get("route"), "path", None)
        if isinstance(route, str):
            server_span.update_name(f"HTTP {scope['method']} {route}")
            server_span.set_attribute("http.route", route)

    def _parent(self, scope: Scope) -> Context:
        carrier: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in (b"traceparent", b"tracestate"):
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        if not carrier:
            return self._context.Context()
        return self.handle.propagator.extract(carrier)
