"""Tokenizing and chat templating off the event loop, in a small bounded pool.

A 4 MB prompt takes the bundled tokenizer about 6 s of CPU on this class of machine; run on the loop
it stalls every other request (``/health`` answered after 3 to 8 s while three clients sent such
bodies). The tokenizers release the GIL for most of that work, so a worker thread leaves the loop
free. The pool is small and fixed: more large prompts than workers wait in its queue, off the loop,
instead of taking more CPU from the requests that are being answered; past ``MAX_WAITING`` waiting
ones a new large prompt gets 503 ``overloaded`` with Retry-After at once, so a flood of them holds a
bounded amount of memory (each waiting one keeps its body) and cannot queue work for minutes.

Small inputs, the common case, stay inline: a short chat renders in about 0.3 ms, while a hop to a
thread and back costs about as much again and adds latency to every request.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from llmserve.errors import Overloaded

T = TypeVar("T")

# One worker: a long text's slices are encoded by the tokenizer's own thread pool already
# (engine/tokenize.py), and each input in flight holds its ids (about 40 bytes a token: 64 MB for
# 4 MB of text); with two, three clients sending 4 MB chats took the server to +175 MB.
POOL_THREADS = 1
# Text up to this size (characters, all messages together) is tokenized inline, well under 5 ms.
INLINE_CHARS = 16 * 1024
# Large inputs queued or running at once; a 4 MB one takes seconds, so more would wait longer than a
# client's patience while each holds its body in memory.
MAX_WAITING = 16

_pool: ThreadPoolExecutor | None = None
_in_pool = 0  # read and changed on event-loop threads only, never in the workers


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:  # created on first use: most requests never need it
        _pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="llmserve-tokenize")
    return _pool


async def run_blocking(work: Callable[..., T], *args: object) -> T:
    """``work(*args)`` in the tokenizer pool; a cancelled caller's work is dropped if not begun."""
    global _in_pool
    if _in_pool >= POOL_THREADS + MAX_WAITING:
        raise Overloaded("Too many large prompts are being tokenized right now; retry shortly")
    _in_pool += 1
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor(), functools.partial(work, *args))
    finally:
        _in_pool -= 1


async def run_sized(chars: int, work: Callable[..., T], *args: object) -> T:
    """``work(*args)`` inline when its input of ``chars`` characters is small, in the pool otherwise."""
    if chars <= INLINE_CHARS:
        return work(*args)
    return await run_blocking(work, *args)


def engine_threads(configured: int | None, cores: int | None = None) -> int:
    """torch's intra-op threads for a serving process: ``engine.threads``, or every core but one.

    torch's own choice is every core, which leaves none to the event loop: at 10x overload on a
    2-core machine /health's p99 went to 268 ms, the engine answered 16 requests in 10 s (p50 15 s)
    and 503s took up to 1.6 s; with one thread, 21 ms, 369 answers (p50 1 s) and 503s within 1.0 s.
    Intra-op threads that wait on each other at every kernel also stall whenever one is descheduled.
    """
    if configured is not None:
        return configured
    return max(1, (cores if cores is not None else os.cpu_count() or 1) - 1)
