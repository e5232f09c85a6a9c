"""Issue 14: /ready?model=<group> answers for that group only, so one broken group does not hide the rest."""

from __future__ import annotations

from dataclasses import replace

from llmserve.api.serving.health import readiness
from llmserve.config import ModelDeployment
from llmserve.engine.manager import ModelManager
from tests.unit.api.serving.test_health import services


class TwoGroups:
    def __init__(self) -> None:
        self.managers = [
            ModelManager(ModelDeployment(name="broken", model="/nonexistent/x")),
            ModelManager(ModelDeployment(name="good", model="tiny-chat")),
        ]
        self.managers[0]._state, self.managers[0]._error = "failed", "PermanentLoadError: no such path"
        self.managers[1]._state, self.managers[1]._ever_loaded = "ready", True

    def in_flight(self) -> dict[str, int]:
        return {}


async def test_ready_for_one_group_ignores_a_broken_other_group() -> None:
    fixture = replace(services({"database": "ok"}), registry=TwoGroups())  # type: ignore[arg-type]
    status, body, _headers = await readiness(fixture)
    assert status == 503 and body["error"]["code"] == "model_load_failed"
    assert body["models"] == {"broken": "failed", "good": "ready"}
    status, body, _headers = await readiness(fixture, model="good")
    assert status == 200 and body["models"] == {"good": "ready"}
    status, body, _headers = await readiness(fixture, model="broken")
    assert status == 503 and "broken" in body["error"]["message"]
