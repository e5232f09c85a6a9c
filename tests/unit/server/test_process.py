"""Which HTTP parser ``llmserve serve`` hands uvicorn for each ``server.http`` setting."""

from __future__ import annotations

import functools
import pickle

import pytest

from llmserve.config import ServerSettings
from llmserve.server.http_limits import HttpLimits
from llmserve.server.http_protocol import H2cTolerantHttpToolsProtocol
from llmserve.server.process import uvicorn_http_protocol, uvicorn_server_options


def test_the_default_is_httptools_through_the_h2c_tolerant_protocol() -> None:
    assert uvicorn_http_protocol(ServerSettings().http) is H2cTolerantHttpToolsProtocol


@pytest.mark.parametrize(("setting", "expected"), [("auto", H2cTolerantHttpToolsProtocol), ("h11", "h11")])
def test_each_setting_picks_its_parser(setting: str, expected: object) -> None:
    assert uvicorn_http_protocol(setting) == expected


def test_the_head_limits_reach_both_parsers_and_pickle_into_worker_processes() -> None:
    settings = ServerSettings(max_header_bytes=8192, max_headers=10, header_timeout_seconds=2)
    options = uvicorn_server_options(settings)
    assert options["h11_max_incomplete_event_size"] == 8192
    protocol = options["http"]
    assert isinstance(protocol, functools.partial) and protocol.func is H2cTolerantHttpToolsProtocol
    assert protocol.keywords["limits"] == HttpLimits(8192, 10, 2.0, 30.0)
    assert pickle.loads(pickle.dumps(protocol)).keywords == protocol.keywords  # uvicorn's workers: spawn
    assert uvicorn_server_options(ServerSettings())["http"] is H2cTolerantHttpToolsProtocol
    assert uvicorn_server_options(ServerSettings(http="h11"))["http"] == "h11"
