"""Operator endpoints' wire formats."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field


class UsageEntry(BaseModel):
    """Totals of one group; ``model`` and ``day`` appear only when the report is grouped by them."""

    model: str | None = Field(None, description="The model group")
    day: date | None = Field(None, description="UTC calendar day")
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = Field(description="USD as a JSON number (a float: may round in the last digits)")
    cost_usd_exact: str = Field(description="USD as exact decimal text with 10 places, e.g. '0.0018684000'")
    cache_hits: int = Field(description="Requests answered from the exact or semantic cache")
    errors: int = Field(description="Upstream calls that failed")


class UsageReport(BaseModel):
    object: Literal["list"] = "list"
    data: list[UsageEntry]
