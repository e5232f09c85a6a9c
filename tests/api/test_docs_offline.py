"""/docs and /redoc work without internet: their scripts and styles come from this server
(issue 14, item 21)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_nothing_from_another_host(client: TestClient, page: str) -> None:
    html = client.get(page).text
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
    assert sources, html[:300]
    assert all(source.startswith("/docs-assets/") for source in sources), sources
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 1000, source
