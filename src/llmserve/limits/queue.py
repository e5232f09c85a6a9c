"""The admission queue in front of each model group (the seed's RequestQueue, bounded and fair).

A group runs at most ``per_model_concurrency.get(group, max_concurrency)`` requests at once; the rest
wait in a heap keyed by ``(priority, round, arrival)``. A lower priority number goes first (1 before
5). Within one priority each tenant's waiters get consecutive rounds starting after the round being
served, so tenants take turns (round-robin) and each tenant's own requests stay FIFO: a tenant with
100 queued requests delays a newcomer by at most one request per other waiting tenant.

Shedding is immediate and explicit: a group with ``max_queued`` waiters answers ``QueueFull`` with
code ``queue_full`` at once, and a waiter that gets no slot within ``queue_timeout_seconds`` gets
``queue_timeout``. Both carry ``retry_after``, the estimated time for the queue ahead to drain.

A freed slot passes straight to the next waiter (``running`` never dips in between), so a newcomer
cannot overtake the queue. A waiter whose task is cancelled (client gone) leaves the queue at once;
if it was granted a slot in the same loop iteration, the slot goes to the next waiter. Cancelled
entries are dropped lazily from the heap, and the heap is compacted when they outnumber the live
ones, so a group's memory stays within about twice ``max_queued`` entries. Every operation is
O(log n) (compaction amortised O(1)). Everything runs on one event loop and needs no lock.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import TypedDict

from llmserve.config import QueueSettings
from llmserve.errors import QueueFull

Clock = Callable[[], float]

# Weight of the newest slot-hold time in the moving average behind retry_after estimates.
_HOLD_EWMA_WEIGHT = 0.2
# Retry-After when no request of the group has finished yet.
_DEFAULT_RETRY_AFTER_S = 1.0
# Compact the heap only past this many cancelled entries (and when they outnumber the live ones).
_COMPACT_MIN_DEAD = 64


class GroupSnapshot(TypedDict):
    running: int
    queued: int
    max_concurrency: int
    max_queued: int


class _WaiterState(Enum):
    QUEUED = "queued"
    GRANTED = "granted"
    REMOVED = "removed"


@dataclass(eq=False)
class _Waiter:
    priority: int
    tenant: str
    round: int
    future: asyncio.Future[bool]  # True: granted a slot; False: timed out
    state: _WaiterState = _WaiterState.QUEUED
    timer: asyncio.TimerHandle | None = None


@dataclass
class _TenantTurns:
    queued: int = 0
    last_round: int = 0


@dataclass
class _PriorityLevel:
    """The tenants waiting at one priority, and the round last served there."""

    served_round: int = 0
    tenants: dict[str, _TenantTurns] = field(default_factory=dict)


_HeapEntry = tuple[int, int, int, _Waiter]  # (priority, round, arrival, waiter)


@dataclass
class _Group:
    name: str
    limit: int
    running: int = 0
    queued: int = 0  # live waiters; the heap may also hold cancelled ones
    heap: list[_HeapEntry] = field(default_factory=list)
    dead: int = 0  # removed waiters still in the heap
    levels: dict[int, _PriorityLevel] = field(default_factory=dict)
    arrivals: int = 0
    avg_hold_s: float | None = None


class Ticket:
    """A slot of a group; ``release()`` (idempotent, sync) hands it to the next waiter.

    ``waited_seconds`` is the time spent queued (0 when a slot was free). A ticket from a disabled
    queue holds nothing and is born released.
    """

    __slots__ = ("_granted_at", "_queue", "_released", "_state", "group", "waited_seconds")

    def __init__(
        self,
        group: str,
        *,
        waited_seconds: float = 0.0,
        queue: AdmissionQueue | None = None,
        state: _Group | None = None,
        granted_at: float = 0.0,
    ) -> None:
        self.group = group
        self.waited_seconds = waited_seconds
        self._queue = queue
        self._state = state
        self._granted_at = granted_at
        self._released = queue is None or state is None

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        assert self._queue is not None and self._state is not None
        self._queue._finish(self._state, self._queue._clock() - self._granted_at)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class AdmissionQueue:
    """Per-group concurrency slots with a bounded, priority-ordered, tenant-fair wait for them."""

    def __init__(self, settings: QueueSettings, *, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._groups: dict[str, _Group] = {}
        self._default_limits: dict[str, int] = {}

    def set_default_concurrency(self, group: str, limit: int) -> None:
        """``group``'s slots when ``per_model_concurrency`` does not name it (instead of max_concurrency):
        for a group of local models, what their engines decode at once."""
        self._default_limits[group] = limit
        state = self._groups.get(group)
        if state is not None and group not in self.settings.per_model_concurrency:
            state.limit = limit

    # -- public ------------------------------------------------------------------------------------

    async def acquire(self, group: str, priority: int | None, tenant: str) -> Ticket:
        """Wait for a slot of ``group``; raises QueueFull when the queue is full or the wait too long."""
        if not self.settings.enabled:
            return Ticket(group)
        state = self._group(group)
        start = self._clock()
        if state.running < state.limit:
            state.running += 1
            return Ticket(group, queue=self, state=state, granted_at=start)
        if state.queued >= self.settings.max_queued:
            raise QueueFull(
                f"The queue of model '{group}' is full ({state.queued} waiting); retry later",
                retry_after=self._retry_after(state),
                code="queue_full",
            )
        rank = self.settings.default_priority if priority is None else priority
        waiter = self._enqueue(state, rank, tenant)
        try:
            granted = await waiter.future
        except BaseException:
            # Cancelled (the client left) or interrupted: never keep, never leak a slot.
            if waiter.state is _WaiterState.GRANTED:
                self._finish(state, None)
            elif waiter.state is _WaiterState.QUEUED:
                self._remove(state, waiter, in_heap=True)
            raise
        if not granted:
            raise QueueFull(
                f"No slot of model '{group}' within {self.settings.queue_timeout_seconds:g} s; retry later",
                retry_after=self._retry_after(state),
                code="queue_timeout",
            )
        now = self._clock()
        return Ticket(group, waited_seconds=now - start, queue=self, state=state, granted_at=now)

    def running(self, group: str) -> int:
        state = self._groups.get(group)
        return 0 if state is None else state.running

    def queued(self, group: str) -> int:
        state = self._groups.get(group)
        return 0 if state is None else state.queued

    def snapshot(self) -> dict[str, GroupSnapshot]:
        """Every group seen so far (and every configured one): for the queue gauges."""
        for name in self.settings.per_model_concurrency:
            self._group(name)
        return {
            name: GroupSnapshot(
                running=state.running,
                queued=state.queued,
                max_concurrency=state.limit,
                max_queued=self.settings.max_queued,
            )
            for name, state in self._groups.items()
        }

    # -- internals ---------------------------------------------------------------------------------

    def _group(self, name: str) -> _Group:
        state = self._groups.get(name)
        if state is None:
            limit = self.settings.per_model_concurrency.get(
                name, self._default_limits.get(name, self.settings.max_concurrency)
            )
            state = self._groups[name] = _Group(name, limit)
        return state

    def _enqueue(self, state: _Group, priority: int, tenant: str) -> _Waiter:
        level = state.levels.get(priority)
        if level is None:
            level = state.levels[priority] = _PriorityLevel()
        turns = level.tenants.get(tenant)
        if turns is None:
            turns = level.tenants[tenant] = _TenantTurns()
        # The tenant's next turn: after its own previous waiter, and never before the round being served.
        turns.last_round = max(turns.last_round, level.served_round) + 1
        turns.queued += 1
        loop = asyncio.get_running_loop()
        waiter = _Waiter(priority, tenant, turns.last_round, loop.create_future())
        waiter.timer = loop.call_later(self.settings.queue_timeout_seconds, self._expire, state, waiter)
        state.arrivals += 1
        state.queued += 1
        heapq.heappush(state.heap, (priority, waiter.round, state.arrivals, waiter))
        return waiter

    def _finish(self, state: _Group, held_s: float | None) -> None:
        """A slot is free: it passes to the next live waiter, or back to the pool."""
        if held_s is not None:
            avg = state.avg_hold_s
            state.avg_hold_s = held_s if avg is None else avg + _HOLD_EWMA_WEIGHT * (held_s - avg)
        while state.heap:
            waiter = heapq.heappop(state.heap)[3]
            if waiter.state is not _WaiterState.QUEUED:
                state.dead -= 1
                continue
            if waiter.future.done():  # its task was cancelled and has not run its cleanup yet
                self._remove(state, waiter, in_heap=False)
                continue
            self._dequeued(state, waiter, _WaiterState.GRANTED)
            level = state.levels.get(waiter.priority)
            if level is not None:
                level.served_round = max(level.served_round, waiter.round)
            waiter.future.set_result(True)
            return
        state.running -= 1

    def _expire(self, state: _Group, waiter: _Waiter) -> None:
        if waiter.state is _WaiterState.QUEUED:
            self._remove(state, waiter, in_heap=True)
            if not waiter.future.done():
                waiter.future.set_result(False)

    def _remove(self, state: _Group, waiter: _Waiter, *, in_heap: bool) -> None:
        self._dequeued(state, waiter, _WaiterState.REMOVED)
        if in_heap:
            state.dead += 1
            if state.dead >= _COMPACT_MIN_DEAD and state.dead > state.queued:
                state.heap = [entry for entry in state.heap if entry[3].state is _WaiterState.QUEUED]
                heapq.heapify(state.heap)
                state.dead = 0

    def _dequeued(self, state: _Group, waiter: _Waiter, new_state: _WaiterState) -> None:
        """Bookkeeping for a waiter leaving the queue (granted or removed)."""
        waiter.state = new_state
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None
        state.queued -= 1
        level = state.levels[waiter.priority]
        turns = level.tenants[waiter.tenant]
        turns.queued -= 1
        if turns.queued == 0:
            del level.tenants[waiter.tenant]
            if not level.tenants:
                del state.levels[waiter.priority]

    def _retry_after(self, state: _Group) -> float:
        """About how long the queue ahead takes to drain, capped at the longest allowed wait."""
        if state.avg_hold_s is None:
            return _DEFAULT_RETRY_AFTER_S
        estimate = state.avg_hold_s * (state.queued + 1) / state.limit
        return min(max(estimate, 0.1), self.settings.queue_timeout_seconds)
