"""Webhooks without a receiver: signatures, the secret they need, and the SSRF guard on callback URLs.

Deliveries to a real loopback receiver (retries, redirects, DNS rebinding) are in
tests/e2e/jobs/test_webhooks.py."""

from __future__ import annotations

import socket

import orjson
import pytest
from pydantic import SecretStr

from llmserve.config import JobSettings
from llmserve.errors import InvalidRequest
from llmserve.jobs.webhooks import check_callback_url, require_secret, sign, verify
from tests.unit.jobs.fakes import PAYLOAD, SECRET, fake_dns, job_settings, sender_for

# -- signatures ----------------------------------------------------------------------------------


def test_verify_rejects_stale_or_malformed_signatures() -> None:
    body = orjson.dumps(PAYLOAD)
    header = "sha256=" + sign(SECRET.encode(), 1_700_000_000, body)

    assert verify(SECRET.encode(), 1_700_000_000, body, header, now=1_700_000_299)
    assert not verify(SECRET.encode(), 1_700_000_000, body, header, now=1_700_000_301)  # replayed later
    assert not verify(SECRET.encode(), "not-a-number", body, header)
    assert not verify(SECRET.encode(), 1_700_000_000, body, header.removeprefix("sha256="), now=1_700_000_000)


# -- the secret ----------------------------------------------------------------------------------


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
