"""Which callback URLs a job may carry: a guard against server-side request forgery.

A callback URL comes from an API client, so it may point anywhere the server can reach: the cloud
metadata service, the admin port of a neighbour, loopback. ``check_callback_url`` refuses such
targets when the job is submitted; the sender checks again before every attempt (``checked_url``),
and its connector's ``GuardedResolver`` refuses the addresses it is about to connect to, because DNS
can change between the check and the connection (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from llmserve.config import JobSettings
from llmserve.errors import InvalidRequest

CODE_INVALID = "callback_url_invalid"
CODE_REFUSED = "callback_url_refused"
CODE_UNRESOLVABLE = "callback_url_unresolvable"
CODE_DISABLED = "webhooks_disabled"

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the IP addresses the host resolves to. Tests pass a fake to play DNS rebinding.
Resolve = Callable[[str, int], Awaitable[list[str]]]


def require_secret(settings: JobSettings) -> None:
    """Refuses a callback_url when the server has no key to sign deliveries with."""
    if settings.webhook_secret is None:
        raise InvalidRequest(
            "callback_url needs jobs.webhook_secret on the server", param="callback_url", code=CODE_DISABLED
        )


async def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver's addresses for ``host`` (what callbacks resolve with outside tests)."""
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


async def checked_url(url: str, settings: JobSettings, resolve: Resolve) -> URL:
    """``url`` parsed, when callbacks may reach its host; InvalidRequest (its code says why) if not."""
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
    await checked_url(url, settings, resolve or resolve_host)


class AddressRefused(OSError):
    """Raised inside aiohttp's connector; it arrives wrapped in a ClientConnectorError."""


class GuardedResolver(AbstractResolver):
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
                raise AddressRefused(f"callback_url host {host} now resolves to a {kind} address")
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
