"""The registry builds each local engine with the engine settings (issue 14: the request deadline)."""

from __future__ import annotations

from llmserve.config import load_settings
from llmserve.providers.http import UpstreamHTTP
from llmserve.services.models import ModelRegistry


async def test_a_local_engine_gets_the_configured_request_deadline() -> None:
    settings = load_settings(engine={"request_timeout_seconds": 7.5})
    registry = ModelRegistry.from_settings(settings, UpstreamHTTP())
    try:
        [deployment] = registry.router.deployments(settings.default_model or "")
        engine = deployment.provider.engine  # type: ignore[attr-defined]
        assert engine.request_timeout_s == 7.5
    finally:
        await registry.close()
