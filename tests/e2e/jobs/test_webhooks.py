"""Webhook delivery against a real loopback receiver: signatures, retries, and the SSRF guard."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from llmserve.config import JobSettings
from llmserve.errors import InvalidRequest
from llmserve.jobs.webhooks import (
    DeliveryResult,
    Resolve,
    WebhookSender,
    check_callback_url,
    require_secret,
    sign,
    verify,
)
from tests.upstreams.server import Fault, Reply, UpstreamRequest, UpstreamServer

pytestmark = pytest.mark.e2e

SECRET = "whsec-test-0123456789abcdef"
PAYLOAD = {"id": "job_123", "status": "completed", "result": {"text": "héllo"}}


class Receiver:
    """What the loopback receiver answers when no fault is queued."""

    def __init__(self) -> None:
        self.reply = Reply(200, {"ok": True})

    def __call__(self, request: UpstreamRequest) -> Reply:
        return self.reply


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def server(receiver: Receiver) -> Iterator[UpstreamServer]:
    with UpstreamServer(receiver) as upstream:
        yield upstream


def job_settings(**fields: Any) -> JobSettings:
    fields.setdefault("webhook_allowed_hosts", ["127.0.0.1/32"])  # the receiver lives on loopback
    fields.setdefault("webhook_timeout_seconds", 2.0)
    return JobSettings(webhook_secret=SecretStr(SECRET), **fields)


@asynccontextmanager
async def sender_for(
    settings: JobSettings, resolve: Resolve | None = None, cap_s: float = 0.05
) -> AsyncIterator[WebhookSender]:
    sender = WebhookSender(settings, backoff_base_s=0.01, backoff_cap_s=cap_s, resolve=resolve)
    try:
        yield sender
    finally:
        await sender.close()


async def deliver(server: UpstreamServer, cap_s: float = 0.05, **fields: Any) -> DeliveryResult:
    async with sender_for(job_settings(**fields), cap_s=cap_s) as sender:
        return await sender.deliver(f"{server.url}/hook", "job.completed", PAYLOAD)


def fake_dns(*answers: list[str]) -> tuple[Resolve, list[str]]:
    """A resolver whose n-th lookup gets answers[n] (the last one repeats); records the hosts asked."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    return resolve, asked


# -- signatures ----------------------------------------------------------------------------------


async def test_delivery_carries_a_signature_the_receiver_can_verify(server: UpstreamServer) -> None:
    result = await deliver(server)

    assert result == DeliveryResult(True, 1, 200, None, result.delivery_id)
    [request] = server.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.json() == PAYLOAD
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-llmserve-event"] == "job.completed"
    assert headers["x-llmserve-delivery"] == result.delivery_id
    assert abs(int(headers["x-llmserve-timestamp"]) - time.time()) < 5
    assert headers["x-llmserve-signature"] == "sha256=" + sign(
        SECRET.encode(), int(headers["x-llmserve-timestamp"]), request.body
    )
    args = (SECRET.encode(), headers["x-llmserve-timestamp"])
    assert verify(*args, request.body, headers["x-llmserve-signature"])
    assert not verify(*args, request.body.replace(b"completed", b"failed"), headers["x-llmserve-signature"])
    assert not verify(b"another-secret-0123456789", args[1], request.body, headers["x-llmserve-signature"])


def test_verify_rejects_stale_or_malformed_signatures() -> None:
    body = orjson.dumps(PAYLOAD)
    header = "sha256=" + sign(SECRET.encode(), 1_700_000_000, body)

    assert verify(SECRET.encode(), 1_700_000_000, body, header, now=1_700_000_299)
    assert not verify(SECRET.encode(), 1_700_000_000, body, header, now=1_700_000_301)  # replayed later
    assert not verify(SECRET.encode(), "not-a-number", body, header)
    assert not verify(SECRET.encode(), 1_700_000_000, body, header.removeprefix("sha256="), now=1_700_000_000)


# -- retries -------------------------------------------------------------------------------------


async def test_server_errors_are_retried_until_delivered(server: UpstreamServer) -> None:
    server.fail(Fault("status", status=500), Fault("status", status=502))

    result = await deliver(server)

    assert (result.delivered, result.attempts, result.status) == (True, 3, 200)
    assert len(server.requests) == 3
    # One delivery id for the whole series, so receivers can drop duplicates.
    assert {r.headers["x-llmserve-delivery"] for r in server.requests} == {result.delivery_id}


async def test_hangs_and_resets_are_retried(server: UpstreamServer) -> None:
    server.fail(Fault("hang"), Fault("reset"))

    result = await deliver(server, webhook_timeout_seconds=0.3)

    assert (result.delivered, result.attempts) == (True, 3)
    assert len(server.requests) == 3


async def test_client_error_is_not_retried(server: UpstreamServer) -> None:
    server.fail_always(Fault("status", status=400))

    result = await deliver(server)

    assert (result.delivered, result.attempts, result.status) == (False, 1, 400)
    assert result.error == "answered 400"
    assert len(server.requests) == 1


async def test_attempts_stop_at_webhook_max_attempts(server: UpstreamServer) -> None:
    server.fail_always(Fault("status", status=503))

    result = await deliver(server, webhook_max_attempts=3)

    assert (result.delivered, result.attempts, result.status) == (False, 3, 503)
    assert len(server.requests) == 3


async def test_numeric_retry_after_is_honoured(server: UpstreamServer) -> None:
    server.fail(Fault("status", status=429, retry_after="0.3"))

    started = time.monotonic()
    result = await deliver(server, cap_s=1.0)

    assert (result.delivered, result.attempts) == (True, 2)
    assert time.monotonic() - started >= 0.3


async def test_retry_after_is_capped(server: UpstreamServer) -> None:
    server.fail(Fault("status", status=503, retry_after="3600"))

    started = time.monotonic()
    result = await deliver(server)  # the cap is 0.05 s here

    assert (result.delivered, result.attempts) == (True, 2)
    assert time.monotonic() - started < 2


async def test_redirects_are_not_followed(server: UpstreamServer, receiver: Receiver) -> None:
    with UpstreamServer(Receiver()) as elsewhere:
        receiver.reply = Reply(307, b"", headers={"location": f"{elsewhere.url}/internal"})

        result = await deliver(server)

        assert (result.delivered, result.attempts, result.status) == (False, 1, 307)
        assert elsewhere.requests == []


async def test_deliver_without_a_secret_is_a_server_bug() -> None:
    async with sender_for(JobSettings()) as sender:
        with pytest.raises(RuntimeError, match="webhook_secret"):
            await sender.deliver("https://example.com/hook", "job.completed", PAYLOAD)


def test_callback_url_is_refused_when_the_server_cannot_sign() -> None:
    with pytest.raises(InvalidRequest, match=r"needs jobs\.webhook_secret") as caught:
        require_secret(JobSettings())
    assert caught.value.code == "webhooks_disabled"
    require_secret(job_settings())


# -- the SSRF guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://127.1/hook",  # shorthand IPv4 that resolves to loopback
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
    ],
)
async def test_internal_targets_are_refused_by_default(url: str) -> None:
    with pytest.raises(InvalidRequest, match="refused") as caught:
        await check_callback_url(url, JobSettings(webhook_secret=SecretStr(SECRET)))
    assert caught.value.code == "callback_url_refused"
    assert caught.value.param == "callback_url"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "http or https"),
        ("gopher://example.com/", "http or https"),
        ("http://user:pass@example.com/hook", "user name or password"),
        ("http://@example.com/hook", "user name or password"),
        ("http:///hook", "no host"),
        ("/relative/hook", "http or https"),
        ("http://exa mple.com/hook", "whitespace"),
        ("http://example.com\\@127.0.0.1/", "not a valid URL"),
    ],
)
async def test_malformed_callback_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why) as caught:
        await check_callback_url(url, JobSettings())
    assert caught.value.code == "callback_url_invalid"


async def test_private_targets_are_allowed_when_configured() -> None:
    await check_callback_url("http://127.0.0.1:9/hook", JobSettings(webhook_allow_private=True))
    await check_callback_url("http://localhost:9/hook", JobSettings(webhook_allow_private=True))
    cidr = JobSettings(webhook_allowed_hosts=["127.0.0.1/32", "10.0.0.0/8"])
    await check_callback_url("http://127.0.0.1:9/hook", cidr)
    await check_callback_url("http://[::ffff:127.0.0.1]:9/hook", cidr)
    await check_callback_url("http://10.20.30.40/hook", cidr)
    with pytest.raises(InvalidRequest, match="private"):
        await check_callback_url("http://192.168.1.1/hook", cidr)  # not in a listed CIDR
    await check_callback_url(
        "http://Hooks.Internal./x", JobSettings(webhook_allowed_hosts=["hooks.internal"])
    )


async def test_public_hosts_pass() -> None:
    resolve, asked = fake_dns(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])

    await check_callback_url("https://hooks.example.com/job", JobSettings(), resolve=resolve)
    await check_callback_url("https://93.184.216.34/job", JobSettings(), resolve=resolve)

    assert asked == ["hooks.example.com"]  # a literal address needs no lookup


async def test_a_host_with_any_internal_address_is_refused() -> None:
    resolve, _ = fake_dns(["93.184.216.34", "10.0.0.5"])
    with pytest.raises(InvalidRequest, match="private address"):
        await check_callback_url("https://hooks.example.com/job", JobSettings(), resolve=resolve)


async def test_unresolvable_host_is_refused() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(InvalidRequest, match="cannot be resolved") as caught:
        await check_callback_url("https://nowhere.example/job", JobSettings(), resolve=resolve)
    assert caught.value.code == "callback_url_unresolvable"


async def test_rebinding_before_a_retry_stops_delivery(server: UpstreamServer) -> None:
    server.fail_always(Fault("status", status=500))
    # Lookups 1-2 (check, connect) see the receiver; from the retry on the name points inside.
    resolve, _ = fake_dns(["127.0.0.1"], ["127.0.0.1"], ["10.0.0.7"])

    async with sender_for(job_settings(), resolve) as sender:
        result = await sender.deliver(f"http://hooks.test:{server.port}/hook", "job.failed", PAYLOAD)

    assert (result.delivered, result.attempts, result.status) == (False, 1, 500)
    assert result.error is not None and "private address" in result.error
    assert len(server.requests) == 1


async def test_rebinding_between_check_and_connect_is_refused(server: UpstreamServer) -> None:
    resolve, asked = fake_dns(["127.0.0.1"], ["10.0.0.7"])

    async with sender_for(job_settings(), resolve) as sender:
        result = await sender.deliver(f"http://hooks.test:{server.port}/hook", "job.failed", PAYLOAD)

    assert (result.delivered, result.attempts, result.status) == (False, 1, None)
    assert result.error is not None and "now resolves to a private address" in result.error
    assert len(asked) == 2 and server.requests == []
