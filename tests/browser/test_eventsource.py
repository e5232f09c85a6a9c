"""examples/eventsource.html in headless Chromium: a browser EventSource streams a reply from a live server.

Two ways to open the page: from another origin (a static server, ``?base=`` naming llmserve, which
allows that origin by CORS), and from llmserve's own origin (no ``?base``, no CORS). Either way the
reply appears in the page and the page closes its EventSource at ``data: [DONE]``: an EventSource
left open would reconnect and ask again.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.live_server import LiveServer

pytestmark = pytest.mark.browser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PAGE = EXAMPLES / "eventsource.html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STREAM_TIMEOUT_MS = 60_000


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def examples_site(examples_origin: str) -> Iterator[str]:
    """examples/ served as static files from the origin the session server allows (CORS)."""
    address = urlsplit(examples_origin)
    handler = functools.partial(_QuietHandler, directory=str(EXAMPLES))
    server = ThreadingHTTPServer((address.hostname or "127.0.0.1", address.port or 80), handler)
    thread = threading.Thread(target=server.serve_forever, name="examples-site", daemon=True)
    thread.start()
    try:
        yield examples_origin
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true: a missing browser is a broken pipeline")
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def greedy_reply(server: LiveServer, prompt: str) -> str:
    body = {"messages": [{"role": "user", "content": prompt}], "temperature": 0}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    response.raise_for_status()
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def ask(page: Page, prompt: str) -> str:
    """Type a prompt, send it, wait for the end of the stream; the page's answer text."""
    page.fill("#prompt", prompt)
    page.click("#send")
    page.wait_for_selector(
        "#status[data-state='done'], #status[data-state='error']", timeout=STREAM_TIMEOUT_MS
    )
    status = page.text_content("#status") or ""
    assert page.get_attribute("#status", "data-state") == "done", status
    assert re.fullmatch(r"done · message [0-9a-f]{32}", status), status
    # Closed at [DONE] (EventSource.CLOSED == 2), not left to reconnect.
    assert page.evaluate("source.readyState") == 2
    assert page.is_enabled("#send")
    return page.text_content("#answer") or ""


def test_page_from_another_origin_streams_a_reply(
    page: Page, live_server: LiveServer, examples_site: str
) -> None:
    streams: list[str] = []
    page.on("request", lambda request: streams.append(request.url) if "/chat/stream" in request.url else None)
    page.goto(f"{examples_site}/eventsource.html?base={live_server.url}")

    answer = ask(page, "Hello!")

    assert answer == greedy_reply(live_server, "Hello!")
    assert len(streams) == 1 and streams[0].startswith(f"{live_server.url}/chat/stream?")
    # A second question replaces the first answer.
    assert ask(page, "你好") == greedy_reply(live_server, "你好")
    assert len(streams) == 2


def test_page_from_the_server_origin_needs_no_base(page: Page, live_server: LiveServer) -> None:
    # As if llmserve and the page shared one origin (one reverse proxy): the page document comes from
    # disk, every other request goes to the live server.
    page_url = f"{live_server.url}/examples/eventsource.html"

    def serve_page(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=PAGE.read_text())

    page.route(page_url, serve_page)
    page.goto(page_url)

    assert ask(page, "What is your name?") == greedy_reply(live_server, "What is your name?")


def test_swagger_ui_renders_offline_with_nothing_from_another_host(
    page: Page, live_server: LiveServer
) -> None:
    # Any request to another host is refused, as on a machine without internet (issue 14, item 21).
    outside: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(f"{live_server.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=STREAM_TIMEOUT_MS)
    assert "llmserve" in (page.text_content(".swagger-ui .info .title") or "")
    assert page.locator(".opblock-summary-path[data-path='/v1/chat/completions']").count() >= 1
    assert outside == []
