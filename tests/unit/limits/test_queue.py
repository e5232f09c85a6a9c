"""The admission queue: slots per group, priority then tenant-fair order, bounded and cancellable."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from llmserve.config import QueueSettings
from llmserve.errors import QueueFull
from llmserve.limits.queue import AdmissionQueue, Ticket

GROUP = "chat"


def make_queue(**overrides: Any) -> AdmissionQueue:
    values: dict[str, Any] = {"max_concurrency": 2, "max_queued": 100, "queue_timeout_seconds": 5.0}
    values.update(overrides)
    return AdmissionQueue(QueueSettings(**values))


async def settle() -> None:
    """Let every ready task run until the loop is quiet (waiters enqueue, grants resume)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Recorder:
    """Starts waiters and records the order they are granted a slot in."""

    def __init__(self, queue: AdmissionQueue, group: str = GROUP) -> None:
        self.queue = queue
        self.group = group
        self.granted: list[str] = []
        self.tickets: dict[str, Ticket] = {}
        self.tasks: dict[str, asyncio.Task[Ticket]] = {}

    def start(self, name: str, priority: int | None, tenant: str = "t") -> asyncio.Task[Ticket]:
        async def wait() -> Ticket:
            ticket = await self.queue.acquire(self.group, priority, tenant)
            self.granted.append(name)
            self.tickets[name] = ticket
            return ticket

        task = asyncio.create_task(wait(), name=name)
        self.tasks[name] = task
        return task

    async def release_one_at_a_time(self, first: list[Ticket]) -> None:
        """Release the held slots, then each grantee's slot in turn, until nobody waits."""
        for ticket in first:
            ticket.release()
            await settle()
        released = 0
        while released < len(self.granted):
            self.tickets[self.granted[released]].release()
            released += 1
            await settle()


async def test_a_group_runs_at_most_its_concurrency_and_a_release_admits_the_next() -> None:
    queue = make_queue(max_concurrency=2, per_model_concurrency={"small": 1})
    first = await queue.acquire(GROUP, None, "a")
    second = await queue.acquire(GROUP, None, "a")
    only = await queue.acquire("small", None, "a")
    assert (first.waited_seconds, queue.running(GROUP), queue.running("small")) == (0.0, 2, 1)

    third = asyncio.create_task(queue.acquire(GROUP, None, "a"))
    other = asyncio.create_task(queue.acquire("small", None, "b"))
    await settle()
    assert not third.done() and not other.done()
    assert (queue.queued(GROUP), queue.queued("small")) == (1, 1)

    first.release()
    first.release()  # idempotent: frees one slot, not two
    await settle()
    assert third.done() and queue.running(GROUP) == 2 and queue.queued(GROUP) == 0
    ticket = third.result()
    assert ticket.waited_seconds > 0

    for t in (second, ticket, only):
        t.release()
    await settle()
    other.result().release()
    assert queue.snapshot() == {
        GROUP: {"running": 0, "queued": 0, "max_concurrency": 2, "max_queued": 100},
        "small": {"running": 0, "queued": 0, "max_concurrency": 1, "max_queued": 100},
    }


async def test_lower_priority_numbers_are_served_first_under_load() -> None:
    queue = make_queue(max_concurrency=2, default_priority=5)
    held = [await queue.acquire(GROUP, 5, "t"), await queue.acquire(GROUP, 5, "t")]
    recorder = Recorder(queue)
    rng = random.Random(7)
    priorities: dict[str, int] = {}
    for i in range(30):
        priority = rng.choice([1, 3, 5, 9, None])
        name = f"w{i}"
        priorities[name] = 5 if priority is None else priority
        recorder.start(name, priority)
    await settle()
    assert queue.queued(GROUP) == 30

    await recorder.release_one_at_a_time(held)

    order = [priorities[name] for name in recorder.granted]
    assert len(order) == 30
    assert order == sorted(order)
    # FIFO among equal priorities of one tenant.
    same = [name for name in recorder.granted if priorities[name] == 5]
    assert same == sorted(same, key=lambda n: int(n[1:]))
    assert queue.running(GROUP) == 0 and queue.queued(GROUP) == 0


async def test_a_tenant_with_a_backlog_does_not_starve_one_with_two_requests() -> None:
    queue = make_queue(max_concurrency=1)
    held = [await queue.acquire(GROUP, None, "a")]
    recorder = Recorder(queue)
    for i in range(20):
        recorder.start(f"a{i}", None, "a")
    await settle()
    recorder.start("b0", None, "b")
    recorder.start("b1", None, "b")
    await settle()

    await recorder.release_one_at_a_time(held)

    assert len(recorder.granted) == 22
    assert {"b0", "b1"} <= set(recorder.granted[:4])
    a_order = [name for name in recorder.granted if name.startswith("a")]
    assert a_order == [f"a{i}" for i in range(20)]  # FIFO within a tenant


async def test_a_tenant_arriving_mid_backlog_waits_behind_one_turn_per_tenant() -> None:
    queue = make_queue(max_concurrency=1)
    held = [await queue.acquire(GROUP, None, "a")]
    recorder = Recorder(queue)
    for i in range(10):
        recorder.start(f"a{i}", None, "a")
    await settle()
    held[0].release()  # a0 runs
    await settle()
    recorder.tickets["a0"].release()  # a1 runs; now c arrives
    await settle()
    recorder.start("c0", None, "c")
    await settle()
    recorder.tickets["a1"].release()  # a2 runs: its turn was set before c came
    await settle()
    recorder.tickets["a2"].release()
    await settle()
    assert recorder.granted == ["a0", "a1", "a2", "c0"]
    for task in recorder.tasks.values():
        task.cancel()
    await settle()
    recorder.tickets["c0"].release()
    assert (queue.running(GROUP), queue.queued(GROUP)) == (0, 0)


async def test_a_full_queue_refuses_at_once_with_queue_full() -> None:
    queue = make_queue(max_concurrency=1, max_queued=3)
    held = await queue.acquire(GROUP, None, "a")
    waiters = [asyncio.create_task(queue.acquire(GROUP, None, "a")) for _ in range(3)]
    await settle()

    with pytest.raises(QueueFull) as refused:
        await asyncio.wait_for(queue.acquire(GROUP, 1, "b"), timeout=0.1)
    assert refused.value.code == "queue_full"
    assert refused.value.status_code == 503
    assert 0 < refused.value.retry_after <= 5.0
    assert queue.queued(GROUP) == 3

    held.release()
    await settle()
    for task in waiters:
        if task.done():
            task.result().release()
        else:
            task.cancel()
    await settle()
    assert queue.running(GROUP) == 0 and queue.queued(GROUP) == 0


async def test_retry_after_estimates_the_wait_from_past_slot_hold_times() -> None:
    now = [0.0]
    queue = AdmissionQueue(
        QueueSettings(max_concurrency=2, max_queued=4, queue_timeout_seconds=60), clock=lambda: now[0]
    )
    for _ in range(2):
        ticket = await queue.acquire(GROUP, None, "a")
        now[0] += 2.0  # each request holds its slot 2 s
        ticket.release()
    held = [await queue.acquire(GROUP, None, "a") for _ in range(2)]
    waiters = [asyncio.create_task(queue.acquire(GROUP, None, "a")) for _ in range(4)]
    await settle()
    with pytest.raises(QueueFull) as refused:
        await queue.acquire(GROUP, None, "a")
    # 4 queued + this one, 2 at a time, 2 s each: about 5 s.
    assert refused.value.retry_after == pytest.approx(5.0)
    for task in waiters:
        task.cancel()
    for ticket in held:
        ticket.release()
    await settle()


async def test_a_wait_past_the_timeout_fails_with_queue_timeout_and_leaves_the_queue() -> None:
    queue = make_queue(max_concurrency=1, queue_timeout_seconds=0.05)
    held = await queue.acquire(GROUP, None, "a")

    with pytest.raises(QueueFull) as timed_out:
        await asyncio.wait_for(queue.acquire(GROUP, None, "b"), timeout=1.0)
    assert timed_out.value.code == "queue_timeout"
    assert queue.queued(GROUP) == 0

    held.release()
    assert queue.running(GROUP) == 0  # the timed-out waiter did not take the slot
    ticket = await queue.acquire(GROUP, None, "c")
    assert ticket.waited_seconds == 0.0
    ticket.release()


async def test_a_cancelled_waiter_leaves_at_once_and_never_gets_a_slot() -> None:
    queue = make_queue(max_concurrency=1)
    held = await queue.acquire(GROUP, None, "a")
    recorder = Recorder(queue)
    gone = recorder.start("gone", 1, "a")
    recorder.start("next", 5, "b")
    await settle()
    assert queue.queued(GROUP) == 2

    gone.cancel()
    await settle()
    assert gone.cancelled()
    assert queue.queued(GROUP) == 1

    held.release()
    await settle()
    assert recorder.granted == ["next"]
    assert queue.running(GROUP) == 1
    recorder.tickets["next"].release()
    assert queue.running(GROUP) == 0


async def test_a_slot_granted_as_its_waiter_is_cancelled_goes_to_the_next_waiter() -> None:
    queue = make_queue(max_concurrency=1)
    held = await queue.acquire(GROUP, None, "a")
    recorder = Recorder(queue)
    first = recorder.start("first", None, "a")
    recorder.start("second", None, "b")
    await settle()

    held.release()  # grants "first" ...
    first.cancel()  # ... whose client leaves before its task resumes
    await settle()

    assert first.cancelled()
    assert recorder.granted == ["second"]
    assert (queue.running(GROUP), queue.queued(GROUP)) == (1, 0)
    recorder.tickets["second"].release()
    assert queue.running(GROUP) == 0


async def test_a_waiter_cancelled_just_before_the_release_is_skipped() -> None:
    queue = make_queue(max_concurrency=1)
    held = await queue.acquire(GROUP, None, "a")
    recorder = Recorder(queue)
    first = recorder.start("first", None, "a")
    recorder.start("second", None, "b")
    await settle()

    first.cancel()  # cancelled, its cleanup not yet run ...
    held.release()  # ... when the slot frees
    await settle()

    assert first.cancelled()
    assert recorder.granted == ["second"]
    recorder.tickets["second"].release()
    assert (queue.running(GROUP), queue.queued(GROUP)) == (0, 0)


async def test_a_granted_waiter_whose_only_successor_is_gone_returns_the_slot_to_the_pool() -> None:
    queue = make_queue(max_concurrency=1)
    held = await queue.acquire(GROUP, None, "a")
    first = asyncio.create_task(queue.acquire(GROUP, None, "a"))
    await settle()
    held.release()
    first.cancel()
    await settle()
    assert first.cancelled()
    assert (queue.running(GROUP), queue.queued(GROUP)) == (0, 0)


async def test_many_cancellations_keep_the_heap_bounded() -> None:
    queue = make_queue(max_concurrency=1, max_queued=50)
    held = await queue.acquire(GROUP, None, "a")
    for _ in range(20):
        tasks = [asyncio.create_task(queue.acquire(GROUP, None, f"t{i % 7}")) for i in range(50)]
        await settle()
        for task in tasks:
            task.cancel()
        await settle()
    state = queue._groups[GROUP]
    assert queue.queued(GROUP) == 0
    assert len(state.heap) <= 2 * 50 + 64
    assert state.levels == {}
    held.release()
    assert queue.running(GROUP) == 0


async def test_a_disabled_queue_admits_everyone_at_once() -> None:
    queue = make_queue(enabled=False, max_concurrency=1)
    tickets = [await queue.acquire(GROUP, None, "a") for _ in range(10)]
    assert queue.running(GROUP) == 0
    for ticket in tickets:
        ticket.release()
    assert queue.snapshot() == {}


async def test_ten_times_overload_sheds_promptly_and_nobody_hangs() -> None:
    concurrency, max_queued, callers = 4, 40, 400
    queue = make_queue(max_concurrency=concurrency, max_queued=max_queued, queue_timeout_seconds=1.5)
    outcomes: dict[str, int] = {"admitted": 0, "queue_full": 0, "queue_timeout": 0}
    peak = {"running": 0, "queued": 0}

    async def caller(i: int) -> None:
        try:
            ticket = await queue.acquire(GROUP, (1, 5)[i % 2], f"tenant{i % 13}")
        except QueueFull as exc:
            outcomes[exc.code or "?"] += 1
            return
        with ticket:
            outcomes["admitted"] += 1
            peak["running"] = max(peak["running"], queue.running(GROUP))
            peak["queued"] = max(peak["queued"], queue.queued(GROUP))
            await asyncio.sleep(0.005)

    async def sample() -> None:
        while True:
            peak["queued"] = max(peak["queued"], queue.queued(GROUP))
            peak["running"] = max(peak["running"], queue.running(GROUP))
            await asyncio.sleep(0)

    async def all_callers() -> None:
        sampler = asyncio.create_task(sample())
        try:
            await asyncio.gather(*(caller(i) for i in range(callers)))
        finally:
            sampler.cancel()

    await asyncio.wait_for(all_callers(), timeout=1.8)

    assert sum(outcomes.values()) == callers
    assert outcomes["admitted"] >= concurrency + max_queued
    assert outcomes["queue_full"] > 0
    assert peak["running"] <= concurrency
    assert peak["queued"] <= max_queued
    assert (queue.running(GROUP), queue.queued(GROUP)) == (0, 0)
    print(f"10x overload: {outcomes}")
