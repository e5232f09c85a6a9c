"""A deployment as the router sees it: its config, its provider, its breaker and live statistics."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from llmserve.config import ModelDeployment
from llmserve.providers.base import Provider
from llmserve.routing.breaker import CircuitBreaker

# rpm/tpm caps and the usage-based strategy look at a sliding window of this length.
USAGE_WINDOW_SECONDS = 60.0
# When a deployment is full only by max_concurrency we cannot know when a call ends: suggest this.
CONCURRENCY_RETRY_AFTER_SECONDS = 1.0


class DeploymentStats:
    """Counters, latency EWMA and the one-minute usage window of one deployment (no I/O, no locks:
    it is only touched from the event loop)."""

    def __init__(self, *, alpha: float = 0.3, clock: Callable[[], float] = time.monotonic) -> None:
        self.alpha = alpha
        self._clock = clock
        self.in_flight = 0
        self.requests = 0
        self.successes = 0
        self.failures = 0
        self.ewma_latency_ms: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._request_times: deque[float] = deque()
        self._token_events: deque[tuple[float, int]] = deque()
        self._window_tokens = 0

    def now(self) -> float:
        return self._clock()

    def begin(self) -> None:
        """A call starts: it is in flight and counts toward this minute's requests."""
        self.in_flight += 1
        self.requests += 1
        self._request_times.append(self._clock())

    def end(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def observe_latency(self, seconds: float) -> None:
        sample = seconds * 1000
        previous = self.ewma_latency_ms
        self.ewma_latency_ms = sample if previous is None else previous + self.alpha * (sample - previous)

    def add_tokens(self, tokens: int) -> None:
        if tokens > 0:
            self._token_events.append((self._clock(), tokens))
            self._window_tokens += tokens

    def record_success(self) -> None:
        self.successes += 1

    def record_failure(self, error: BaseException) -> None:
        self.failures += 1
        self.last_error = str(error) or type(error).__name__
        self.last_error_at = self._clock()

    @property
    def error_rate(self) -> float:
        finished = self.successes + self.failures
        return self.failures / finished if finished else 0.0

    def rpm_used(self) -> int:
        self._prune(self._clock())
        return len(self._request_times)

    def tpm_used(self) -> int:
        self._prune(self._clock())
        return self._window_tokens

    def seconds_until_under(self, rpm: int | None, tpm: int | None) -> float | None:
        """None when below both caps now; otherwise how long until the window has room again."""
        now = self._clock()
        self._prune(now)
        waits: list[float] = []
        if rpm is not None and len(self._request_times) >= rpm:
            # Once this many of the oldest requests leave the window, the count is below the cap.
            waits.append(self._request_times[len(self._request_times) - rpm] + USAGE_WINDOW_SECONDS - now)
        if tpm is not None and self._window_tokens >= tpm:
            remaining = self._window_tokens
            for when, tokens in self._token_events:
                remaining -= tokens
                if remaining < tpm:
                    waits.append(when + USAGE_WINDOW_SECONDS - now)
                    break
        return max(waits) if waits else None

    def _prune(self, now: float) -> None:
        horizon = now - USAGE_WINDOW_SECONDS
        while self._request_times and self._request_times[0] <= horizon:
            self._request_times.popleft()
        while self._token_events and self._token_events[0][0] <= horizon:
            self._window_tokens -= self._token_events.popleft()[1]


@dataclass(eq=False)
class Deployment:
    id: str
    group: str
    config: ModelDeployment
    provider: Provider
    stats: DeploymentStats = field(default_factory=DeploymentStats)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)

    @property
    def cost_per_1k(self) -> float:
        """Input plus output price per 1k tokens; no pricing (a local model) costs nothing."""
        pricing = self.config.pricing
        return 0.0 if pricing is None else pricing.input_per_1k + pricing.output_per_1k

    def capacity_wait(self) -> float | None:
        """None when the deployment may take a call now (caps only, not the breaker); otherwise the
        seconds until it may."""
        config = self.config
        wait = self.stats.seconds_until_under(config.rpm, config.tpm)
        if config.max_concurrency is not None and self.stats.in_flight >= config.max_concurrency:
            wait = max(wait or 0.0, CONCURRENCY_RETRY_AFTER_SECONDS)
        return wait

    def headroom(self) -> float:
        """The smallest share of rpm/tpm left this minute (1.0 when uncapped)."""
        config = self.config
        shares = [1.0]
        if config.rpm is not None:
            shares.append(1 - self.stats.rpm_used() / config.rpm)
        if config.tpm is not None:
            shares.append(1 - self.stats.tpm_used() / config.tpm)
        return max(0.0, min(shares))

    def snapshot(self) -> dict[str, object]:
        stats, breaker, config = self.stats, self.breaker, self.config
        now = stats.now()
        until_probe = breaker.seconds_until_half_open()
        return {
            "id": self.id,
            "group": self.group,
            "provider": config.provider,
            "model": config.model,
            "api_base": redact_url(config.api_base),
            "breaker": breaker.state,
            "half_open_in_s": None if until_probe is None else round(until_probe, 3),
            "in_flight": stats.in_flight,
            "requests": stats.requests,
            "successes": stats.successes,
            "failures": stats.failures,
            "error_rate": round(stats.error_rate, 4),
            "ewma_latency_ms": None if stats.ewma_latency_ms is None else round(stats.ewma_latency_ms, 2),
            "rpm_used": stats.rpm_used(),
            "tpm_used": stats.tpm_used(),
            "rpm_limit": config.rpm,
            "tpm_limit": config.tpm,
            "max_concurrency": config.max_concurrency,
            "last_error": stats.last_error,
            "last_error_age_s": None if stats.last_error_at is None else round(now - stats.last_error_at, 3),
        }


def redact_url(url: str | None) -> str | None:
    """An api_base without user:password or query string (some put keys there)."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return urlunsplit((parts.scheme, f"{host}:{port}" if port else host, parts.path, "", ""))
