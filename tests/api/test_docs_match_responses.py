"""docs/api.md describes the operator endpoints field by field: these fail when a response gains,
loses or reshapes a field the document does not (the breaker was documented as an object while the
server sent a string; /ready's dependencies were not documented at all)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _bullet(prefix: str) -> str:
    text = API_DOC.read_text(encoding="utf-8")
    start = text.index(prefix)
    end = text.find("\n- ", start + 1)
    return text[start:end]


def _quoted_names(text: str) -> set[str]:
    return set(re.findall(r'"([a-z_]+)"', text))


def test_every_deployment_field_is_documented_with_its_type(client: TestClient) -> None:
    deployment = client.get("/admin/deployments").json()["data"][0]
    documented = _bullet("- `GET /admin/deployments`")
    assert set(deployment) <= _quoted_names(documented), set(deployment) - _quoted_names(documented)
    assert isinstance(deployment["breaker"], str)
    assert f'`"{deployment["breaker"]}"`' in documented


def test_the_ready_report_is_documented_with_its_dependencies(client: TestClient) -> None:
    response = client.get("/ready")
    documented = _bullet("- `GET /ready`:")
    body = response.json()
    assert set(body) <= _quoted_names(documented) | {"error"}
    assert set(body["dependencies"]) <= _quoted_names(documented)
    for state in body["dependencies"].values():
        assert f"`{state}`" in documented
