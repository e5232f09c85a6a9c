"""Webhook delivery against a real loopback receiver: signatures, retries, redirects and DNS rebinding.

Signature checks and the SSRF guard's verdicts on URLs need no receiver: tests/unit/jobs/test_webhooks.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from llmserve.jobs.webhooks import DeliveryResult, sign, verify
from tests.unit.jobs.fakes import PAYLOAD, SECRET, fake_dns, job_settings, sender_for
from tests.upstreams.server import Fault, Reply, UpstreamRequest, UpstreamServer

pytestmark = pytest.mark.e2e


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


async def deliver(server: UpstreamServer, cap_s: float = 0.05, **fields: Any) -> DeliveryResult:
    async with sender_for(job_settings(**fields), cap_s=cap_s) as sender:
        return await sender.deliver(f"{server.url}/hook", "job.completed", PAYLOAD)


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


# -- the SSRF guard at delivery time ---------------------------------------------------------------


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
