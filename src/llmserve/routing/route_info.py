"""RouteInfo: how a request was answered (group, deployment, attempts, time upstream)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RouteInfo:
    """How a request was answered; streams keep adding to ``upstream_seconds`` as they run."""

    group: str
    deployment: str = ""
    attempts: int = 0
    upstream_seconds: float = 0.0
    fallback_used: bool = False
