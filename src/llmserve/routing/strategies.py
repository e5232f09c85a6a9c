"""Routing strategies: which deployments of a group may take a call now, and in what order to try them.

A strategy returns an order, not one pick, so a retry goes to the next deployment in it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from llmserve.errors import NoDeploymentAvailable, RateLimited
from llmserve.routing.deployment import Deployment

Strategy = Callable[[Sequence[Deployment], random.Random], list[Deployment]]


def eligible(group: str, deployments: Sequence[Deployment]) -> list[Deployment]:
    """The deployments that may take a call now, in the given order.

    Raises ``RateLimited`` (with the seconds until one frees up) when rpm/tpm/concurrency caps keep
    every deployment out, and ``NoDeploymentAvailable`` when their breakers do.
    """
    ready: list[Deployment] = []
    waits: list[float] = []
    for deployment in deployments:
        if not deployment.breaker.would_allow():
            continue
        wait = deployment.capacity_wait()
        if wait is None:
            ready.append(deployment)
        else:
            waits.append(wait)
    if ready:
        return ready
    if waits:
        retry_after = min(waits)
        raise RateLimited(
            f"Every deployment of '{group}' is at its rate limit; retry after {retry_after:.1f}s",
            retry_after=retry_after,
        )
    raise NoDeploymentAvailable(f"No deployment of '{group}' is available right now")


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
