"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from llmserve.api.deps import ServicesDep
from llmserve.api.serving import health as health_serving

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Never touches the model or the database."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "A model or a dependency is not ready"}})
async def ready(services: ServicesDep, model: str | None = None) -> JSONResponse:
    """Readiness: 200 once every local model can serve and every dependency answers (database, Redis
    when configured); ``?model=<group>`` asks about that group only. The first call starts loading
    lazy models. Never calls a model."""
    status, body, headers = await health_serving.readiness(services, model)
    return JSONResponse(body, status, headers=headers or None)


# HEAD as well, for uptime monitors that probe with it: FastAPI, unlike Starlette, does not add it to
# GET. Left out of the schema (one operation per path is documented; uvicorn drops the body).
router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False)
