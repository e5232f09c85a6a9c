"""What the pipeline knows about who is asking and how they want caching handled."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmserve.principal import ANONYMOUS_PRINCIPAL, Principal

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class RequestContext:
    """Per-request facts from the HTTP layer that the services act on.

    ``tenant`` scopes the cache (and later limits and budgets): tenants never share cached answers.
    ``cache_opt_in`` is true when the body carried a ``cache`` object: the client asks for caching
    even of answers sampled with temperature > 0.
    """

    tenant: str = ANONYMOUS
    request_id: str = ""
    api_key: str | None = None
    no_cache: bool = False
    no_store: bool = False
    cache_ttl: float | None = None
    cache_namespace: str | None = None
    cache_opt_in: bool = False
    received_at: float | None = None  # perf_counter() when the HTTP request arrived
    principal: Principal = field(default_factory=lambda: ANONYMOUS_PRINCIPAL)
    priority: int | None = None  # the body's priority (lower first); None: the key's default
