"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from llmserve.api.deps import ServicesDep
from llmserve.errors import error_body

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Never touches the model or the database."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "A model or a dependency is not ready"}})
async def ready(services: ServicesDep) -> JSONResponse:
    """Readiness: 200 once every local model can serve and every dependency answers (database, Redis
    when configured). The first call starts loading lazy models. Never calls a model."""
    managers = services.registry.managers
    dependencies = await services.health.check() if services.health else {}
    report = {
        "models": {m.deployment.name: m.state for m in managers},
        "dependencies": dependencies,
    }
    failed = [m for m in managers if m.state == "failed"]
    if failed:
        message = "; ".join(f"{m.deployment.name}: {m.error}" for m in failed)
        body = error_body(f"Model failed to load: {message}", "service_unavailable", code="model_load_failed")
        return JSONResponse({**body, **report}, 503, headers={"Retry-After": "5"})
    waiting = [m for m in managers if not m.ready_to_serve]
    for manager in waiting:
        manager.start_loading()
    if waiting:
        body = error_body("Loading model", "service_unavailable", code="model_loading")
        return JSONResponse({**body, **report}, 503, headers={"Retry-After": "1"})
    down = [name for name, state in dependencies.items() if state == "down"]
    if down:
        body = error_body(
            f"Unavailable: {', '.join(down)}", "service_unavailable", code="dependency_unavailable"
        )
        return JSONResponse({**body, **report}, 503, headers={"Retry-After": "1"})
    return JSONResponse(
        {
            "status": "ready",
            **report,
            # Generations queued or running per model: 0 means the worker is idle (a drained replica).
            "in_flight": services.registry.in_flight(),
        }
    )
