"""Routing: deployments of a model group, strategies, circuit breakers, retries, fallbacks, hedging."""

from llmserve.routing.breaker import CircuitBreaker, is_breaker_fault
from llmserve.routing.calls import RoutedStream
from llmserve.routing.complexity import ComplexityClassifier, classify
from llmserve.routing.deployment import Deployment, DeploymentStats
from llmserve.routing.retry import is_retryable
from llmserve.routing.route_info import RouteInfo
from llmserve.routing.router import AUTO_MODEL, Router

__all__ = [
    "AUTO_MODEL",
    "CircuitBreaker",
    "ComplexityClassifier",
    "Deployment",
    "DeploymentStats",
    "RouteInfo",
    "RoutedStream",
    "Router",
    "classify",
    "is_breaker_fault",
    "is_retryable",
]
