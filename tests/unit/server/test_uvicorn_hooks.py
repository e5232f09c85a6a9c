"""server/http_protocol.py overrides private hooks of uvicorn's httptools protocol. uvicorn is pinned
to the releases this was tested with; these tests fail loudly, naming the hook, if an upgrade renames
or removes one, instead of the default HTTP parser silently losing bodies (Java clients) or the
coalesced writes."""

from __future__ import annotations

import inspect

import httptools
import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from llmserve.server.http_protocol import H2cTolerantHttpToolsProtocol

# Methods of HttpToolsProtocol that the subclass overrides or calls, with the parameters it passes.
OVERRIDDEN = {
    "on_message_begin": [],
    "on_url": ["url"],
    "on_header": ["name", "value"],
    "on_headers_complete": [],
    "on_message_complete": [],
    "data_received": ["data"],
    "_start_asgi_task": ["cycle", "app"],
    "connection_made": ["transport"],
    "connection_lost": ["exc"],
}
CALLED = ("_unset_keepalive_if_required", "_should_upgrade", "handle_websocket_upgrade", "send_400_response")


@pytest.mark.parametrize(("hook", "parameters"), sorted(OVERRIDDEN.items()))
def test_every_overridden_hook_exists_upstream_with_the_same_parameters(
    hook: str, parameters: list[str]
) -> None:
    upstream = getattr(HttpToolsProtocol, hook, None)
    assert upstream is not None, (
        f"uvicorn's HttpToolsProtocol no longer has {hook}: re-check server/http_protocol.py"
    )
    assert list(inspect.signature(upstream).parameters)[1:] == parameters, (hook, inspect.signature(upstream))
    assert hook in vars(H2cTolerantHttpToolsProtocol), f"{hook} is no longer overridden"


@pytest.mark.parametrize("method", CALLED)
def test_every_upstream_method_the_protocol_calls_exists(method: str) -> None:
    assert callable(getattr(HttpToolsProtocol, method, None)), f"uvicorn's HttpToolsProtocol lost {method}"


def test_the_unsupported_upgrade_warning_still_exists() -> None:
    assert callable(getattr(HttpToolsProtocol, "_unsupported_upgrade_warning", None))


def test_the_cycle_attributes_the_transport_wrapper_reads_are_set_by_uvicorn() -> None:
    source = inspect.getsource(RequestResponseCycle.__init__)
    for attribute in ("self.transport", "self.response_started", "self.chunked_encoding", "self.keep_alive"):
        assert attribute in source, f"RequestResponseCycle no longer sets {attribute}"


def test_the_protocol_attributes_it_reads_are_set_by_uvicorn() -> None:
    source = inspect.getsource(HttpToolsProtocol)
    for attribute in ("self.parser", "self.scope", "self.headers", "self.cycle", "self.logger"):
        assert attribute in source, f"HttpToolsProtocol no longer sets {attribute}"


def test_httptools_still_raises_the_upgrade_signal_it_relies_on() -> None:
    assert issubclass(httptools.HttpParserUpgrade, Exception)
    parser = httptools.HttpRequestParser(object())
    assert callable(getattr(parser, "should_upgrade", None)) and callable(getattr(parser, "get_method", None))


def test_the_state_the_read_limits_read_is_set_by_uvicorn() -> None:
    cycle = inspect.getsource(RequestResponseCycle.__init__)
    for attribute in ("self.waiting_for_100_continue", "self.disconnected", "self.message_event"):
        assert attribute in cycle, f"RequestResponseCycle no longer sets {attribute}"
    assert "self.read_paused" in inspect.getsource(FlowControl), "FlowControl no longer has read_paused"
    assert "self.default_headers" in inspect.getsource(ServerState), "ServerState lost default_headers"
