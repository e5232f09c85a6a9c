"""Who is calling: the authenticated key (or the master key, or nobody when auth is off)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from llmserve.config import LimitRule

BudgetPeriod = Literal["daily", "monthly", "total"]
Role = Literal["user", "admin"]


@dataclass(frozen=True)
class Principal:
    """What the pipeline needs to know about the caller; built by the auth layer per request.

    ``key_id`` is None only for the master key and when authentication is off. ``limits`` already
    merges the key's own values over ``limits.per_key`` defaults. ``guardrails`` holds the key's
    overrides of the global guardrail settings (field name → value).
    """

    key_id: str | None = None
    name: str = "anonymous"
    role: Role = "user"
    is_master: bool = False
    models: tuple[str, ...] | None = None  # groups the key may call; None: all
    limits: LimitRule = field(default_factory=LimitRule)
    max_budget_usd: Decimal | None = None
    budget_period: BudgetPeriod = "monthly"
    priority: int | None = None  # default priority of the key's requests
    guardrails: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant(self) -> str:
        """Scopes caches and limits: one per key; the master key and auth-off share 'anonymous'."""
        return self.key_id or ("master" if self.is_master else "anonymous")

    @property
    def is_admin(self) -> bool:
        return self.is_master or self.role == "admin"


ANONYMOUS_PRINCIPAL = Principal()

# ASGI scope keys that only server code sets (the jobs runner calling the app in process): who a
# queued request runs as, and the lowest priority it may run at. HTTP clients cannot reach the scope.
INTERNAL_PRINCIPAL_SCOPE_KEY = "llmserve.principal"
PRIORITY_FLOOR_SCOPE_KEY = "llmserve.priority_floor"
