"""Which HTTP parser ``llmserve serve`` hands uvicorn for each ``server.http`` setting."""

from __future__ import annotations

import pytest

from llmserve.config import ServerSettings
from llmserve.server.http_protocol import H2cTolerantHttpToolsProtocol
from llmserve.server.process import uvicorn_http_protocol


def test_the_default_is_httptools_through_the_h2c_tolerant_protocol() -> None:
    assert uvicorn_http_protocol(ServerSettings().http) is H2cTolerantHttpToolsProtocol


@pytest.mark.parametrize(("setting", "expected"), [("auto", H2cTolerantHttpToolsProtocol), ("h11", "h11")])
def test_each_setting_picks_its_parser(setting: str, expected: object) -> None:
    assert uvicorn_http_protocol(setting) == expected
