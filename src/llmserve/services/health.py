"""Readiness of what a replica depends on: the database, Redis (when configured), the local models."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from llmserve.storage.db import Database

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0


class DependencyChecks:
    """Pings each dependency with a short timeout; never calls a model or a paid upstream."""

    def __init__(self, database: Database, redis_url: str | None) -> None:
        self.database = database
        self.redis_url = redis_url
        self._redis: Redis | None = None

    async def check(self) -> dict[str, str]:
        """``{"database": "ok" | "down", "redis": "ok" | "down" | "not_configured"}``."""
        results = {"database": "ok" if await self._ping_database() else "down"}
        results["redis"] = "not_configured" if self.redis_url is None else await self._ping_redis()
        return results

    async def _ping_database(self) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                return await self.database.ping()
        except TimeoutError:
            return False

    async def _ping_redis(self) -> str:
        assert self.redis_url is not None
        try:
            if self._redis is None:
                from llmserve.storage.redis import connect_limits_redis

                self._redis = connect_limits_redis(self.redis_url, timeout=CHECK_TIMEOUT_S)
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self._redis.ping()
        except Exception as exc:  # any failure means "not ready"; say which in the log
            logger.warning("readiness: Redis at %s is down: %s", self.redis_url.split("@")[-1], exc)
            return "down"
        return "ok"

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
