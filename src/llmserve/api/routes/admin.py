"""Operator endpoints: what the gateway knows about its deployments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from llmserve.api.deps import RegistryDep

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/deployments")
async def list_deployments(registry: RegistryDep) -> dict[str, Any]:
    """Each deployment's breaker state, in-flight calls, latency (EWMA) and error counts.

    Counters are this process's: each replica reports what it has seen itself.
    """
    return {"object": "list", "data": registry.router.snapshot()}
