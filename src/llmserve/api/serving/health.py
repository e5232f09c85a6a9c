"""GET /ready: whether every local model can serve and every dependency answers, as one report."""

from __future__ import annotations

from typing import Any

from llmserve.api.deps import Services
from llmserve.errors import error_body


async def readiness(
    services: Services, model: str | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers): 200 when ready, else 503 with an error object and a Retry-After.
    With ``model`` (a model group's name) only that group's local deployments count, so one broken
    group does not take a replica that serves the others out of rotation. The first call starts
    loading lazy models; nothing calls a model."""
    managers = [m for m in services.registry.managers if model is None or m.deployment.name == model]
    dependencies = await services.health.check() if services.health else {}
    report = {"models": {m.deployment.name: m.state for m in managers}, "dependencies": dependencies}
    failed = [m for m in managers if m.state == "failed"]
    if failed:
        message = "; ".join(f"{m.deployment.name}: {m.error}" for m in failed)
        body = error_body(f"Model failed to load: {message}", "service_unavailable", code="model_load_failed")
        return 503, {**body, **report}, {"Retry-After": "5"}
    waiting = [m for m in managers if not m.ready_to_serve]
    for manager in waiting:
        manager.start_loading()
    if waiting:
        body = error_body("Loading model", "service_unavailable", code="model_loading")
        return 503, {**body, **report}, {"Retry-After": "1"}
    down = [name for name, state in dependencies.items() if state == "down"]
    if down:
        message = f"Unavailable: {', '.join(down)}"
        body = error_body(message, "service_unavailable", code="dependency_unavailable")
        return 503, {**body, **report}, {"Retry-After": "1"}
    # Generations queued or running per model: 0 means the worker is idle (a drained replica).
    return 200, {"status": "ready", **report, "in_flight": services.registry.in_flight()}, {}
