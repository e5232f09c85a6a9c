"""The semantic index shared by replicas: one Redis Stream per scope, searched in each replica's memory.

``add`` appends ``{id, v (float32 bytes), exp (unix time), t (text)}`` to ``<prefix>:sem:<scope>``
(``XADD ... MAXLEN ~ max_entries``; the stream expires after its longest-lived entry). Before a lookup a
replica reads the entries of that scope it has not seen yet (``XRANGE`` from its last id, usually an
empty reply) into its local ``SemanticIndex``, so a search costs one round trip plus an in-process
matrix product, whatever the number of replicas. Needs Redis 7 (``PEXPIRE ... NX|GT``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from llmserve.cache.semantic import Match, SemanticIndex, Vector, normalised
from llmserve.cache.stores import delete_matching, glob_escape

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

SYNC_BATCH = 5000
# Read positions kept for this many scopes; a forgotten one is re-read whole (entries deduplicate).
MAX_TRACKED_SCOPES = 65_536


class RedisSemanticIndex:
    """Uses, and never closes, the client of the store that holds the answers."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        *,
        threshold: float,
        max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.max_entries = max_entries
        self.local = SemanticIndex(threshold, max_entries, clock)
        self._clock = clock
        self._cursors: OrderedDict[str, tuple[int, int]] = OrderedDict()  # scope → last stream id read

    def __len__(self) -> int:
        return len(self.local)

    def _key(self, scope: str) -> str:
        return f"{self.prefix}:sem:{scope}"

    async def lookup(
        self, scope: str, vector: Sequence[float] | Vector, accept: Callable[[str], bool] | None = None
    ) -> Match | None:
        await self._catch_up(scope)
        return await self.local.lookup(scope, vector, accept)

    async def add(
        self, scope: str, vector: Sequence[float] | Vector, entry_id: str, ttl: float, text: str = ""
    ) -> None:
        unit = normalised(vector)
        milliseconds = int(ttl * 1000)
        if unit is None or milliseconds <= 0:
            return
        expires_at = self._clock() + ttl
        key = self._key(scope)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xadd(
                key,
                {"id": entry_id, "v": unit.astype("<f4").tobytes(), "exp": repr(expires_at), "t": text},
                maxlen=self.max_entries,
                approximate=True,
            )
            pipe.pexpire(key, milliseconds, nx=True)  # a new stream: expire with its entry
            pipe.pexpire(key, milliseconds, gt=True)  # later: only ever extended
            await pipe.execute()
        # Visible here at once; the copy read back from the stream later refreshes it in place.
        self.local.add_until(scope, unit, entry_id, expires_at, text)

    async def _catch_up(self, scope: str) -> None:
        key = self._key(scope)
        last = self._cursors.get(scope)
        while True:
            start = "-" if last is None else f"({last[0]}-{last[1]}"
            entries = await self.client.xrange(key, min=start, max="+", count=SYNC_BATCH) or []
            for stream_id, fields in entries:
                if stream_id is None or fields is None:
                    continue
                self._apply(scope, {_bytes(name): _bytes(value) for name, value in fields.items()})
                last = _parse_id(stream_id)
            if len(entries) < SYNC_BATCH:
                break
        if last is not None:
            self._advance(scope, last)

    def _apply(self, scope: str, fields: dict[bytes, bytes]) -> None:
        try:
            entry_id = fields[b"id"].decode()
            vector = np.frombuffer(fields[b"v"], dtype="<f4")
            expires_at = float(fields[b"exp"])
            text = fields.get(b"t", b"").decode()
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            logger.warning("skipping a malformed semantic cache entry in %s: %r", self._key(scope), exc)
            return
        self.local.add_until(scope, vector, entry_id, expires_at, text)

    def _advance(self, scope: str, last: tuple[int, int]) -> None:
        # Two concurrent catch-ups of one scope may finish out of order: never move a cursor back.
        if (current := self._cursors.get(scope)) is None or last > current:
            self._cursors[scope] = last
        self._cursors.move_to_end(scope)
        while len(self._cursors) > MAX_TRACKED_SCOPES:
            self._cursors.popitem(last=False)

    async def clear(self) -> None:
        await delete_matching(self.client, f"{glob_escape(self.prefix)}:sem:*")
        await self.local.clear()
        self._cursors.clear()

    async def close(self) -> None:
        await self.local.close()


def _parse_id(stream_id: bytes | str) -> tuple[int, int]:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
