"""Signed webhook delivery for finished async jobs, guarded against server-side request forgery.

A callback URL comes from an API client, so it may point anywhere the server can reach: the cloud
metadata service, the admin port of a neighbour, loopback. ``check_callback_url`` refuses such
targets when the job is submitted; ``WebhookSender`` checks again before every attempt, and its
connector refuses the addresses it is about to connect to, because DNS can change between the
check and the connection (DNS rebinding).

Receivers authenticate a delivery with ``verify``: an HMAC-SHA256 over ``"<timestamp>." + body``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from llmserve import __version__
from llmserve.config import JobSettings
from llmserve.errors import InvalidRequest

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-llmserve-signature"
TIMESTAMP_HEADER = "x-llmserve-timestamp"
EVENT_HEADER = "x-llmserve-event"
DELIVERY_HEADER = "x-llmserve-delivery"

CODE_INVALID = "callback_url_invalid"
CODE_REFUSED = "callback_url_refused"
CODE_UNRESOLVABLE = "callback_url_unresolvable"
CODE_DISABLED = "webhooks_disabled"

MAX_URL_LENGTH = 2048
_RETRY_STATUSES = frozenset({408, 429})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the IP addresses the host resolves to. Tests pass a fake to play DNS rebinding.
Resolve = Callable[[str, int], Awaitable[list[str]]]


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 over ``"<timestamp>." + body``; the timestamp is signed so replays go stale."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    timestamp: int | str,
    body: bytes,
    header: str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True when ``header`` (``sha256=<hex>``) signs ``body`` at ``timestamp``, within ``tolerance_s``.

    Receivers pass the raw request body (not re-encoded JSON) and the two headers as received.
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    scheme, _, digest = header.strip().partition("=")
    if scheme != "sha256" or not digest:
        return False
    return hmac.compare_digest(sign(secret, sent_at, body), digest.strip().lower())


def require_secret(settings: JobSettings) -> None:
    """Refuses a callback_url when the server has no key to sign deliveries with."""
    if settings.webhook_secret is None:
        raise InvalidRequest(
            "callback_url needs jobs.webhook_secret on the server", param="callback_url", code=CODE_DISABLED
        )


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivered: bool
    attempts: int  # tries that sent a request or failed to reach the host; a refused URL is not one
    status: int | None  # HTTP status of the last answer, None when none came
    error: str | None  # why the last try failed; None once delivered
    delivery_id: str = ""


async def _getaddrinfo(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _Policy:
    """Which addresses callbacks may reach, from the jobs settings."""

    def __init__(self, settings: JobSettings) -> None:
        self.allow_private = settings.webhook_allow_private
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in settings.webhook_allowed_hosts:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip().strip("[]"), strict=False))
            except ValueError:
                self.names.add(_normal_name(entry))

    def allows_name(self, host: str) -> bool:
        return self.allow_private or _normal_name(host) in self.names

    def refusal(self, address: IPAddress) -> str | None:
        """What kind of internal address this is, or None when callbacks may reach it."""
        if self.allow_private:
            return None
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            # ::ffff:127.0.0.1 reaches 127.0.0.1; judge (and allow-list) the IPv4 address it carries.
            candidates.append(address.ipv4_mapped)
        for candidate in candidates:
            if any(net.version == candidate.version and candidate in net for net in self.networks):
                return None
        for candidate in candidates:
            kind = _internal_kind(candidate)
            if kind is not None:
                return kind
        return None


def _normal_name(host: str) -> str:
    return host.strip().rstrip(".").lower()


def _internal_kind(address: IPAddress) -> str | None:
    # Order matters: 127.0.0.1 is also "private"; name the most telling kind.
    kinds = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        # Catches what the flags above miss, e.g. 100.64.0.0/10 carrier-grade NAT.
        ("non-public", not address.is_global),
    )
    return next((name for name, matches in kinds if matches), None)


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _parse(url: str) -> URL:
    def invalid(why: str) -> InvalidRequest:
        return InvalidRequest(f"callback_url {why}", param="callback_url", code=CODE_INVALID)

    if len(url) > MAX_URL_LENGTH:
        raise invalid(f"is longer than {MAX_URL_LENGTH} characters")
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        raise invalid("contains whitespace or control characters")
    try:
        # yarl is the parser aiohttp sends with: checking with another one invites parser confusion.
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise invalid(f"is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise invalid("must use http or https")
    if not parsed.raw_host:
        raise invalid("has no host")
    # yarl drops an empty userinfo ("http://@host/"); urlsplit keeps it, and either is refused.
    if "@" in (parsed.raw_authority or "") or "@" in urlsplit(url).netloc:
        raise invalid("must not contain a user name or password")
    return parsed


async def _checked(url: str, settings: JobSettings, resolve: Resolve) -> URL:
    parsed = _parse(url)
    host = parsed.raw_host
    assert host is not None  # _parse refuses URLs without one
    policy = _Policy(settings)
    if policy.allows_name(host) or (parsed.host is not None and policy.allows_name(parsed.host)):
        return parsed
    literal = _parse_ip(host)
    if literal is not None:
        kind = policy.refusal(literal)
        if kind is not None:
            message = f"callback_url points to a {kind} address; callbacks there are refused"
            raise InvalidRequest(message, param="callback_url", code=CODE_REFUSED)
        return parsed
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            addresses = await resolve(host, parsed.port or 0)
    except (OSError, TimeoutError, UnicodeError):
        addresses = []
    if not addresses:
        raise InvalidRequest(
            f"callback_url host {host} cannot be resolved", param="callback_url", code=CODE_UNRESOLVABLE
        )
    for text in addresses:
        address = _parse_ip(text.split("%", 1)[0])
        kind = "unparsable" if address is None else policy.refusal(address)
        if kind is not None:
            # Which address is not said: that would map the server's internal DNS for the caller.
            message = f"callback_url host {host} resolves to a {kind} address; callbacks there are refused"
            raise InvalidRequest(message, param="callback_url", code=CODE_REFUSED)
    return parsed


async def check_callback_url(url: str, settings: JobSettings, *, resolve: Resolve | None = None) -> None:
    """Raises InvalidRequest unless ``url`` is an http(s) URL whose host callbacks may reach.

    Hosts that are, or resolve to, private, loopback, link-local, multicast, reserved or unspecified
    addresses (IPv4-mapped included) are refused unless ``webhook_allow_private`` is set or the host
    name or each such address is listed in ``webhook_allowed_hosts`` (names or CIDRs).
    """
    await _checked(url, settings, resolve or _getaddrinfo)


class _AddressRefused(OSError):
    """Raised inside aiohttp's connector; it arrives wrapped in a ClientConnectorError."""


class _GuardedResolver(AbstractResolver):
    """Resolves for the connector and refuses internal addresses right before connecting."""

    def __init__(self, settings: JobSettings, resolve: Resolve) -> None:
        self._policy, self._resolve = _Policy(settings), resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        allowed_name = self._policy.allows_name(host)
        for text in await self._resolve(host, port):
            address = ipaddress.ip_address(text.split("%", 1)[0])
            kind = None if allowed_name else self._policy.refusal(address)
            if kind is not None:
                raise _AddressRefused(f"callback_url host {host} now resolves to a {kind} address")
            addr_family = socket.AF_INET if address.version == 4 else socket.AF_INET6
            if family in (socket.AF_UNSPEC, addr_family):
                entry = ResolveResult(
                    hostname=host, host=str(address), port=port, family=addr_family, proto=0, flags=0
                )
                results.append(entry)
        if not results:
            raise OSError(f"{host} has no address of the requested family")
        return results

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One try's outcome: delivered when ``error`` is None; ``retry`` says whether another may help."""

    status: int | None
    error: str | None
    retry: bool
    retry_after: float | None = None


class WebhookSender:
    """Delivers signed job events to callback URLs, retrying with capped exponential backoff.

    One per process (built in the lifespan, closed on shutdown). Redirects are never followed: a
    receiver could otherwise bounce the request to an internal address the checks never saw.
    """

    def __init__(
        self,
        settings: JobSettings,
        *,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        resolve: Resolve | None = None,
    ) -> None:
        self._settings = settings
        self._base = backoff_base_s
        self._cap = backoff_cap_s
        self._resolve = resolve or _getaddrinfo
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # aiohttp wants its session created inside the running loop
            connector = aiohttp.TCPConnector(
                resolver=_GuardedResolver(self._settings, self._resolve),
                use_dns_cache=False,  # every new connection goes through the guarded resolver
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Receivers belong to different tenants: none may set cookies the others then get.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout_seconds),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, url: str, event: str, payload: Mapping[str, Any]) -> DeliveryResult:
        """POSTs ``payload`` to ``url`` until a 2xx, a final refusal, or webhook_max_attempts tries."""
        if self._settings.webhook_secret is None:
            raise RuntimeError("webhook delivery needs jobs.webhook_secret; refuse callback_url earlier")
        secret = self._settings.webhook_secret.get_secret_value().encode()
        body = orjson.dumps(payload)
        delivery_id = f"whd_{uuid.uuid4().hex}"
        attempts = 0
        last = _Attempt(status=None, error="not attempted", retry=False)
        for attempt in range(1, self._settings.webhook_max_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self._delay(attempt - 1, last.retry_after))
            try:
                target = await _checked(url, self._settings, self._resolve)
            except InvalidRequest as exc:
                if exc.code != CODE_UNRESOLVABLE:  # refused now: DNS changed since the job was taken
                    last = _Attempt(status=last.status, error=exc.message, retry=False)
                    break
                attempts += 1
                last = _Attempt(status=None, error=exc.message, retry=True)
                continue
            attempts += 1
            last = await self._post(target, event, body, secret, delivery_id)
            if last.error is None or not last.retry:
                break
            logger.info("webhook %s to %s failed (try %d): %s", delivery_id, target.host, attempt, last.error)
        if last.error is not None:
            logger.warning("webhook %s not delivered after %d tries: %s", delivery_id, attempts, last.error)
        return DeliveryResult(last.error is None, attempts, last.status, last.error, delivery_id)

    def _delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._cap)
        # Full jitter: receivers that failed together do not get their retries back together.
        return random.uniform(0, min(self._cap, self._base * 2 ** (retry - 1)))

    async def _post(self, target: URL, event: str, body: bytes, secret: bytes, delivery_id: str) -> _Attempt:
        timestamp = int(time.time())  # per try, so a late retry still passes the receiver's tolerance
        headers = {
            "content-type": "application/json",
            "user-agent": f"llmserve-webhook/{__version__}",
            SIGNATURE_HEADER: f"sha256={sign(secret, timestamp, body)}",
            TIMESTAMP_HEADER: str(timestamp),
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery_id,
        }
        try:
            async with self._client().post(target, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                retry_after = _retry_after(resp.headers.get("retry-after"))
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _AddressRefused):
                return _Attempt(status=None, error=str(exc.os_error), retry=False)
            return _Attempt(status=None, error=f"cannot connect: {exc.os_error}", retry=True)
        except TimeoutError:  # before ClientError: aiohttp's timeouts subclass both
            timeout = self._settings.webhook_timeout_seconds
            return _Attempt(status=None, error=f"no answer within {timeout:g}s", retry=True)
        except aiohttp.InvalidURL as exc:
            return _Attempt(status=None, error=f"invalid callback_url: {exc}", retry=False)
        except aiohttp.ClientError as exc:
            return _Attempt(status=None, error=f"connection failed: {exc!r}", retry=True)
        if 200 <= status < 300:
            return _Attempt(status=status, error=None, retry=False)
        if 300 <= status < 400:
            return _Attempt(
                status=status, error=f"answered {status}; redirects are not followed", retry=False
            )
        retry = status >= 500 or status in _RETRY_STATUSES
        return _Attempt(status=status, error=f"answered {status}", retry=retry, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a numeric Retry-After; the HTTP-date form falls back to the backoff."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
