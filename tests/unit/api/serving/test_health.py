"""health: /ready's verdict from the models and the dependencies."""

from __future__ import annotations

from llmserve.api.deps import Services
from llmserve.api.serving.health import readiness
from llmserve.config import Settings
from llmserve.services.chat import ChatService
from llmserve.services.health import DependencyChecks
from llmserve.storage.db import Database
from tests.unit.services.chat.fakes import build


class FixedChecks(DependencyChecks):
    def __init__(self, results: dict[str, str]) -> None:
        self.results = results

    async def check(self) -> dict[str, str]:
        return dict(self.results)


def services(checks: dict[str, str]) -> Services:
    fixture = build()
    database = Database("sqlite+aiosqlite:///:memory:")  # never connected: the checks are fixed
    return Services(
        Settings(),
        database,
        fixture.pipeline.registry,
        fixture.conversations,
        ChatService(fixture.pipeline),
        health=FixedChecks(checks),
    )


async def test_ready_when_every_dependency_answers() -> None:
    status, body, headers = await readiness(services({"database": "ok", "redis": "not_configured"}))
    assert status == 200 and body["status"] == "ready" and headers == {}
    assert body["in_flight"] == {} and body["dependencies"]["redis"] == "not_configured"


async def test_a_dependency_down_is_a_503_error_object_that_names_it_with_a_retry_after() -> None:
    status, body, headers = await readiness(services({"database": "ok", "redis": "down"}))
    assert status == 503 and headers == {"Retry-After": "1"}
    assert body["error"]["code"] == "dependency_unavailable" and "redis" in body["error"]["message"]
    assert body["dependencies"] == {"database": "ok", "redis": "down"}
