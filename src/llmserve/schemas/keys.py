"""/admin/keys wire formats. The secret appears in exactly one place: the answer to its creation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["user", "admin"]
BudgetPeriod = Literal["daily", "monthly", "total"]
GroupName = Annotated[str, Field(min_length=1, max_length=128)]


class _KeyFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=255, description="Who or what the key is for")
    models: list[GroupName] | None = Field(
        None, min_length=1, description="Model groups the key may call; null: every group"
    )
    rpm: int | None = Field(None, gt=0, description="Requests per minute; null: limits.per_key")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute; null: limits.per_key")
    max_parallel: int | None = Field(None, gt=0, description="Requests in flight; null: limits.per_key")
    max_budget_usd: Decimal | None = Field(None, ge=0, lt=10**9, description="Spend cap per budget_period")
    priority: int | None = Field(None, ge=0, le=100, description="Default priority; lower runs first")
    guardrails: dict[str, Any] | None = Field(None, description="Overrides of the guardrails settings")
    expires_at: datetime | None = Field(None, description="ISO 8601; UTC if no offset. Then 401")
    metadata: dict[str, Any] | None = Field(None, description="Anything; returned as given")


class KeyCreateRequest(_KeyFields):
    role: Role = Field("user", description="admin keys may call /admin/*")
    budget_period: BudgetPeriod = "monthly"


class KeyUpdateRequest(_KeyFields):
    """Only the fields sent change; null clears an optional one."""

    role: Role | None = None
    budget_period: BudgetPeriod | None = None


class KeyOut(BaseModel):
    id: str
    name: str | None
    key_prefix: str = Field(description="The first characters of the key, to tell keys apart")
    role: Role
    models: list[str] | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    max_budget_usd: float | None
    budget_period: BudgetPeriod
    priority: int | None
    guardrails: dict[str, Any]
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None
    metadata: dict[str, Any]


class KeyCreated(KeyOut):
    key: str = Field(description="The secret itself: shown in this answer only, never again")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyOut]
