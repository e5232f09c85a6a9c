"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from llmserve.api.deps import ServicesDep
from llmserve.api.errors import error_payload

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Never touches the model or the database."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "A model is loading or failed to load"}})
async def ready(services: ServicesDep) -> JSONResponse:
    """Readiness: 200 once every local model can serve. The first call starts loading lazy models."""
    managers = services.registry.managers
    failed = [m for m in managers if m.state == "failed"]
    if failed:
        message = "; ".join(f"{m.deployment.name}: {m.error}" for m in failed)
        body = error_payload(
            f"Model failed to load: {message}", "service_unavailable", code="model_load_failed"
        )
        return JSONResponse(body, 503, headers={"Retry-After": "5"})
    waiting = [m for m in managers if not m.ready_to_serve]
    for manager in waiting:
        manager.start_loading()
    if waiting:
        body = error_payload("Loading model", "service_unavailable", code="model_loading")
        return JSONResponse(body, 503, headers={"Retry-After": "1"})
    if not await services.database.ping():
        body = error_payload("Database unavailable", "service_unavailable", code="database_unavailable")
        return JSONResponse(body, 503, headers={"Retry-After": "1"})
    return JSONResponse(
        {
            "status": "ready",
            "models": {m.deployment.name: m.state for m in managers},
            # Generations queued or running per model: 0 means the worker is idle (a drained replica).
            "in_flight": services.registry.in_flight(),
        }
    )
