"""The Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from llmserve.api.deps import ServicesDep
from llmserve.errors import NotFound

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text exposition", "content": {"text/plain": {}}},
        404: {"description": "Metrics are off (observability.metrics: false)"},
    },
)
async def metrics(services: ServicesDep) -> Response:
    """Every llmserve_* series; with ``--workers N`` the sum over all workers, whichever answers.
    Rendered on the event loop: the state it reads belongs to the loop (it takes about a millisecond)."""
    if services.metrics is None:
        raise NotFound(
            "Metrics are off on this server (observability.metrics: false)", code="metrics_disabled"
        )
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)
