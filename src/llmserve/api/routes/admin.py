"""Operator endpoints: what the gateway knows about its deployments, and what they have cost."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from llmserve.api.deps import RegistryDep, UsageLedgerDep
from llmserve.schemas.admin import IsoDateTime, UsageEntry, UsageReport
from llmserve.services.usage import UsageGroupBy, UsageRow

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/deployments")
async def list_deployments(registry: RegistryDep) -> dict[str, Any]:
    """Each deployment's breaker state, in-flight calls, latency (EWMA) and error counts.

    Counters are this process's: each replica reports what it has seen itself.
    """
    return {"object": "list", "data": registry.router.snapshot()}


@router.get("/usage", response_model=UsageReport, response_model_exclude_none=True)
async def usage_report(
    ledger: UsageLedgerDep,
    start: Annotated[IsoDateTime | None, Query(description="ISO 8601, inclusive; UTC if no offset")] = None,
    end: Annotated[IsoDateTime | None, Query(description="ISO 8601, exclusive; UTC if no offset")] = None,
    api_key: Annotated[str | None, Query(max_length=255, description="Only this key/tenant")] = None,
    model: Annotated[str | None, Query(max_length=255, description="Only this model group")] = None,
    group_by: UsageGroupBy = "model",
) -> UsageReport:
    """Requests, tokens, exact cost and cache hits per group, including every call answered so far."""
    rows = await ledger.report(start=start, end=end, api_key=api_key, model=model, group_by=group_by)
    return UsageReport(data=[_entry(row) for row in rows])


def _entry(row: UsageRow) -> UsageEntry:
    return UsageEntry(
        model=row.model,
        day=row.day,
        requests=row.requests,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=float(row.cost_usd),
        cost_usd_exact=f"{row.cost_usd:f}",
        cache_hits=row.cache_hits,
        errors=row.errors,
    )
