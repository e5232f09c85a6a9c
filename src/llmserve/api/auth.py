"""Who is calling: the key a request presents, checked once per request by a router dependency.

``create_app`` attaches ``authenticate`` to every API router and ``require_admin`` to the /admin
routers. Authentication is on when a master key is configured; then a key comes as
``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (a WebSocket, ``GET /chat/stream`` and the
HTML docs pages /docs and /redoc may also pass ``?api_key=``, because browsers cannot set headers on
them; /openapi.json may not). With authentication off every caller is
``ANONYMOUS_PRINCIPAL`` and /admin is open, as on a loopback-only development server.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, WebSocketException, status
from starlette.requests import HTTPConnection

from llmserve.api.deps import Services
from llmserve.errors import Forbidden, NotFound, Unauthorized
from llmserve.principal import ANONYMOUS_PRINCIPAL, INTERNAL_PRINCIPAL_SCOPE_KEY, Principal
from llmserve.services.keys import KeyService

# RFC 9110: a 401 says which scheme would work.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="llmserve"'}
WEBSOCKET_KEY_PARAM = "api_key"
DENIAL_EXTENSION = "websocket.http.response"  # ASGI: a handshake answered with an HTTP response
# GET, for clients that cannot send headers: a browser EventSource, a browser opening the docs pages.
QUERY_KEY_PATHS = frozenset({"/chat/stream", "/docs", "/redoc"})


def presented_key(connection: HTTPConnection) -> str | None:
    """The key the client sent: Bearer token, then x-api-key, then (WebSocket, EventSource) ?api_key=."""
    authorization = connection.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if api_key := connection.headers.get("x-api-key", "").strip():
        return api_key
    if connection.scope["type"] == "websocket" or connection.url.path in QUERY_KEY_PATHS:
        # Only for clients that cannot send headers: WebSockets, a browser EventSource (GET
        # /chat/stream) and a browser opening /docs or /redoc. Query strings reach access logs, so
        # logging redacts ?api_key= values.
        return connection.query_params.get(WEBSOCKET_KEY_PARAM) or None
    return None


def _key_service(connection: HTTPConnection) -> KeyService | None:
    services: Services = connection.app.state.services
    return services.keys


def _unauthorized(message: str, code: str) -> Unauthorized:
    error = Unauthorized(message, code=code)
    error.headers = CHALLENGE
    return error


async def _principal(connection: HTTPConnection) -> Principal:
    internal = connection.scope.get(INTERNAL_PRINCIPAL_SCOPE_KEY)
    if isinstance(internal, Principal):  # a queued job run in process as its owner (jobs/invoke.py)
        return internal
    keys = _key_service(connection)
    if keys is None or not keys.enabled:
        return ANONYMOUS_PRINCIPAL
    secret = presented_key(connection)
    if secret is None:
        raise _unauthorized(
            "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'", "missing_api_key"
        )
    try:
        return await keys.authenticate(secret)
    except Unauthorized as exc:
        raise _unauthorized(exc.message, exc.code or "invalid_api_key") from exc


async def authenticate(connection: HTTPConnection) -> Principal:
    """The caller's Principal, also kept on ``request.state.principal``; 401 without a valid key.

    A WebSocket handshake that fails gets the same HTTP 401 (OpenAI error body, ``WWW-Authenticate``)
    as a denial response, where the server supports that ASGI extension (uvicorn does); elsewhere it
    is closed with 1008 (policy violation) before it is accepted.
    """
    try:
        principal = await _principal(connection)
    except Unauthorized as exc:
        if connection.scope["type"] == "websocket" and DENIAL_EXTENSION not in connection.scope.get(
            "extensions", {}
        ):
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, reason=exc.message) from exc
        raise  # api/errors.py answers it; starlette sends a Response to a WebSocket as the denial
    connection.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


async def require_admin(connection: HTTPConnection, principal: PrincipalDep) -> Principal:
    """For /admin: the master key or a key with role admin (403 for other keys). Open when auth is off."""
    keys = _key_service(connection)
    if keys is not None and keys.enabled and not principal.is_admin:
        raise Forbidden("This endpoint needs the master key or an admin key", code="admin_required")
    return principal


def principal_of(connection: HTTPConnection) -> Principal:
    """The Principal ``authenticate`` stored for this request (anonymous where it did not run)."""
    principal: Principal = getattr(connection.state, "principal", ANONYMOUS_PRINCIPAL)
    return principal


def _keys(connection: HTTPConnection) -> KeyService:
    keys = _key_service(connection)
    if keys is None:
        raise NotFound("API key management is not available on this server", code="keys_disabled")
    return keys


KeyServiceDep = Annotated[KeyService, Depends(_keys)]
