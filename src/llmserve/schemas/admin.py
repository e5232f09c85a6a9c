"""Operator endpoints' wire formats."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    # pydantic reads a number, even "0.5" in a query string, as Unix seconds: a client that sent a
    # count where ISO 8601 text belongs would get a report from 1970 instead of an error.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("Input should be an ISO 8601 date and time, e.g. 2026-12-01T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_not_a_number)]


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
