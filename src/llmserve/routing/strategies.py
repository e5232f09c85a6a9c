"""Routing strategies: which deployments of a group may take a call now, and in what order to try them.

A strategy returns an order, not one pick, so a retry goes to the next deployment in it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

from llmserve.errors import NoDeploymentAvailable, RateLimited
from llmserve.retry_timing import format_duration
from llmserve.routing.deployment import Deployment

Strategy = Callable[[Sequence[Deployment], random.Random], list[Deployment]]


def eligible(group: str, deployments: Sequence[Deployment]) -> list[Deployment]:
    """The deployments that may take a call now, in the given order.

    Raises ``RateLimited`` (with the seconds until one frees up) when rpm/tpm/concurrency caps keep
    every deployment out, and ``NoDeploymentAvailable`` when their breakers do.
    """
    ready: list[Deployment] = []
    capped: list[tuple[Deployment, float]] = []
    for deployment in deployments:
        if not deployment.breaker.would_allow():
            continue
        wait = deployment.capacity_wait()
        if wait is None:
            ready.append(deployment)
        else:
            capped.append((deployment, wait))
    if ready:
        return ready
    if capped:
        raise _at_capacity(group, capped)
    refused = NoDeploymentAvailable(f"No deployment of '{group}' is available right now")
    # Retry-After says when the first open breaker lets a probe through, not a flat second: a client
    # told "1" while a breaker stays open 10 s more would retry ten times for nothing.
    waits = [s for s in (d.breaker.seconds_until_half_open() for d in deployments) if s is not None]
    refused.retry_after = max(1.0, min(waits, default=1.0))
    raise refused


def _at_capacity(group: str, capped: Sequence[tuple[Deployment, float]]) -> RateLimited:
    """429 for a group whose every deployment is at its rpm/tpm/concurrency cap, with the rate-limit
    headers a client backs off by (as a key's limit sends them): nothing remains until the first
    deployment frees up; the limit is the group's requests per minute when every deployment has one."""
    retry_after = min(wait for _, wait in capped)
    refused = RateLimited(
        f"Every deployment of '{group}' is at its rate limit; retry after {retry_after:.1f}s",
        retry_after=retry_after,
    )
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": format_duration(retry_after),
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(math.ceil(retry_after)),
    }
    rpms = [deployment.config.rpm for deployment, _ in capped]
    if all(rpm is not None for rpm in rpms):
        limit = str(sum(rpm for rpm in rpms if rpm is not None))
        headers.update({"x-ratelimit-limit-requests": limit, "x-ratelimit-limit": limit})
    refused.headers = headers
    return refused


def weighted(deployments: Sequence[Deployment], rng: random.Random) -> list[Deployment]:
    """A weighted random shuffle: each place goes to a remaining deployment with odds ∝ its weight.

    Sorting by Exp(weight) draws is exactly sampling without replacement by weight.
    """
    keyed = [(rng.expovariate(d.config.weight), index) for index, d in enumerate(deployments)]
    return [deployments[index] for _, index in sorted(keyed)]


def least_busy(deployments: Sequence[Deployment], rng: random.Random) -> list[Deployment]:
    return _sorted_with_random_ties(deployments, rng, lambda d: (d.stats.in_flight,))


def lowest_cost(deployments: Sequence[Deployment], rng: random.Random) -> list[Deployment]:
    return _sorted_with_random_ties(deployments, rng, lambda d: (d.cost_per_1k,))


def usage_based(deployments: Sequence[Deployment], rng: random.Random) -> list[Deployment]:
    """Most rpm/tpm headroom left this minute first; among equals, the least used."""
    return _sorted_with_random_ties(
        deployments, rng, lambda d: (-d.headroom(), d.stats.tpm_used(), d.stats.rpm_used())
    )


def lowest_latency(deployments: Sequence[Deployment], rng: random.Random) -> list[Deployment]:
    """Unmeasured deployments first (so each gets a sample), then repeated power-of-two choices.

    Two random picks, the faster first, spread load over the fast deployments instead of piling every
    call on the single fastest one (whose EWMA then lags behind its growing queue).
    """
    unmeasured = [d for d in deployments if d.stats.ewma_latency_ms is None]
    rng.shuffle(unmeasured)
    measured = [d for d in deployments if d.stats.ewma_latency_ms is not None]
    order = unmeasured
    while len(measured) > 1:
        first, second = rng.sample(range(len(measured)), 2)
        pick = first if _latency(measured[first]) <= _latency(measured[second]) else second
        order.append(measured.pop(pick))
    return order + measured


def _latency(deployment: Deployment) -> float:
    return deployment.stats.ewma_latency_ms or 0.0


def _sorted_with_random_ties(
    deployments: Sequence[Deployment], rng: random.Random, key: Callable[[Deployment], tuple[float, ...]]
) -> list[Deployment]:
    keyed = sorted((key(d), rng.random(), index) for index, d in enumerate(deployments))
    return [deployments[index] for _, _, index in keyed]


STRATEGIES: Mapping[str, Strategy] = {
    "weighted": weighted,
    "least-busy": least_busy,
    "lowest-latency": lowest_latency,
    "lowest-cost": lowest_cost,
    "usage-based": usage_based,
}
