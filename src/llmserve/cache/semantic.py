"""The semantic index: per scope, a matrix of unit vectors searched with one matrix-vector product.

Rows are appended in time order, so the oldest entry of a scope is its first live row and eviction is
a moving start offset; arrays grow by doubling and are compacted then, never shifted per entry. Expired
rows stay until evicted or compacted, and are skipped by lookups.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from llmserve.cache.entries import Embedder, Match

__all__ = ["Embedder", "Match", "SemanticIndex", "normalised"]

Vector = npt.NDArray[np.float32]

# Above this many rows a search runs in a worker thread (numpy releases the GIL): 100k rows of 384
# dimensions take 5 ms on an idle 2-core server and 20 ms on a busy one, too long to hold the event
# loop; 1k rows take 35 µs, less than the hand-off to a thread.
OFFLOAD_ROWS = 8192
# Candidates above the threshold offered to ``accept``, best first.
MAX_CANDIDATES = 4
_MIN_CAPACITY = 16


def normalised(vector: Sequence[float] | Vector) -> Vector | None:
    """``vector`` as a contiguous float32 unit vector, or None if it has no direction."""
    array = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    return array / np.float32(norm)


class _Scope:
    """Rows ``start:end`` of the arrays are live; ``rows`` maps an entry id to its row."""

    def __init__(self, dim: int, capacity: int) -> None:
        self.dim = dim
        self.vectors: npt.NDArray[np.float32] = np.empty((capacity, dim), dtype=np.float32)
        self.expires: npt.NDArray[np.float64] = np.empty(capacity, dtype=np.float64)
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.rows: dict[str, int] = {}
        self.start = 0

    @property
    def end(self) -> int:
        return len(self.ids)

    def append(self, vector: Vector, entry_id: str, expires_at: float, text: str) -> None:
        if self.end == len(self.vectors):
            self._regrow()
        row = self.end
        self.vectors[row] = vector
        self.expires[row] = expires_at
        self.ids.append(entry_id)
        self.texts.append(text)
        self.rows[entry_id] = row

    def _regrow(self) -> None:
        # New arrays and lists rather than in-place moves: a search running in a thread keeps reading
        # the ones it started with.
        live = slice(self.start, self.end)
        capacity = max(_MIN_CAPACITY, 2 * (self.end - self.start))
        vectors = np.empty((capacity, self.dim), dtype=np.float32)
        expires = np.empty(capacity, dtype=np.float64)
        count = self.end - self.start
        vectors[:count] = self.vectors[live]
        expires[:count] = self.expires[live]
        self.vectors, self.expires = vectors, expires
        self.ids, self.texts = self.ids[live], self.texts[live]
        self.rows = {entry_id: row for row, entry_id in enumerate(self.ids)}
        self.start = 0

    def drop_oldest(self) -> None:
        entry_id = self.ids[self.start]
        if self.rows.get(entry_id) == self.start:
            del self.rows[entry_id]
        self.start += 1


class SemanticIndex:
    """In-process index of every scope, bounded to ``max_entries`` rows in all (oldest evicted)."""

    def __init__(self, threshold: float, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self.threshold = threshold
        self.max_entries = max_entries
        self._clock = clock  # wall clock: expiries are shared with other replicas through Redis
        self._scopes: dict[str, _Scope] = {}
        self._order: deque[str] = deque()  # the scope of every row, oldest first

    def __len__(self) -> int:
        return len(self._order)

    async def lookup(
        self, scope: str, vector: Sequence[float] | Vector, accept: Callable[[str], bool] | None = None
    ) -> Match | None:
        """The most similar live entry at or above the threshold whose text ``accept`` takes."""
        entries = self._scopes.get(scope)
        query = normalised(vector)
        if entries is None or query is None or query.shape[0] != entries.dim:
            return None
        start, end = entries.start, entries.end
        if start == end:
            return None
        matrix, expires, ids, texts = entries.vectors[start:end], entries.expires, entries.ids, entries.texts
        if end - start >= OFFLOAD_ROWS:
            similarities = await asyncio.to_thread(np.dot, matrix, query)
        else:
            similarities = matrix @ query
        above = np.flatnonzero(similarities >= np.float32(self.threshold))
        if above.size == 0:
            return None
        now = self._clock()
        for offset in above[np.argsort(-similarities[above], kind="stable")][:MAX_CANDIDATES]:
            row = start + int(offset)
            if expires[row] <= now:
                continue
            if accept is None or accept(texts[row]):
                return Match(ids[row], min(1.0, float(similarities[offset])))
        return None

    async def add(
        self, scope: str, vector: Sequence[float] | Vector, entry_id: str, ttl: float, text: str = ""
    ) -> None:
        self.add_until(scope, vector, entry_id, self._clock() + ttl, text)

    def add_until(
        self, scope: str, vector: Sequence[float] | Vector, entry_id: str, expires_at: float, text: str
    ) -> None:
        """Add (or refresh in place) ``entry_id``, live until the unix time ``expires_at``."""
        unit = normalised(vector)
        if unit is None or expires_at <= self._clock():
            return
        entries = self._scopes.get(scope)
        if entries is not None and entries.dim != unit.shape[0]:
            self._drop_scope(scope)  # the embedding model changed: old vectors mean nothing now
            entries = None
        if entries is None:
            entries = self._scopes[scope] = _Scope(unit.shape[0], _MIN_CAPACITY)
        row = entries.rows.get(entry_id)
        if row is not None:
            entries.vectors[row] = unit
            entries.expires[row] = expires_at
            entries.texts[row] = text
            return
        entries.append(unit, entry_id, expires_at, text)
        self._order.append(scope)
        while len(self._order) > self.max_entries:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        scope = self._order.popleft()
        entries = self._scopes[scope]
        entries.drop_oldest()
        if entries.start == entries.end:
            del self._scopes[scope]

    def _drop_scope(self, scope: str) -> None:
        del self._scopes[scope]
        self._order = deque(name for name in self._order if name != scope)

    async def clear(self) -> None:
        self._scopes.clear()
        self._order.clear()

    async def close(self) -> None:
        await self.clear()
