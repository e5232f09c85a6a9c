"""The unit tier starts no servers and no subprocesses; this conftest makes that a checked rule.

While any unit test's setup, call or teardown runs, these are refused:

* serving: ``socket.socket.listen`` (every TCP or Unix stream server: a loopback upstream, uvicorn,
  aiohttp, ``http.server``), ``socket.socket.bind`` to a fixed TCP port or of any non-TCP socket (a
  UDP or Unix-socket receiver), ``loop.create_server``/``create_unix_server`` and
  ``asyncio.start_server``/``start_unix_server``;
* spawning: ``subprocess.Popen`` (hence ``subprocess.run``/``check_output``, ``os.popen`` and the
  default loop's subprocess transports), ``asyncio.create_subprocess_exec/shell``, the
  ``_posixsubprocess.fork_exec`` primitive beneath them and ``multiprocessing``, ``os.fork``,
  ``os.forkpty``, ``os.posix_spawn(p)`` and ``os.system``.

Clients are left alone: ``connect`` works (the machine's PostgreSQL, Redis and RabbitMQ), and so does
binding a TCP socket to port 0, which clients do to pick a source address or, like urllib3 on import,
to probe for IPv6; a server that follows such a bind is refused at its ``listen``. Not covered: servers
and processes started from C (uvloop's ``create_server``, libuv's spawn), which a test could only reach
through uvloop.

A refused call raises ``ServerOrSubprocessInUnitTest`` at once, and a phase in which one was attempted
fails even when the error was swallowed (a server's own thread, an ``except Exception`` in the code under
test). The guard wraps the ``pytest_runtest_setup/call/teardown`` hooks of the items under tests/unit
rather than being a function-scoped autouse fixture: module- and session-scoped fixtures are set up
before any function-scoped one, and they must not start servers either. Tests that need a real server or
process belong in ``tests/e2e/``.
"""

from __future__ import annotations

import _posixsubprocess
import asyncio
import os
import socket
import subprocess
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest

Bind = Callable[[socket.socket, Any], None]

RULE = "unit tests start no servers or subprocesses: move this test to tests/e2e/"


class ServerOrSubprocessInUnitTest(RuntimeError):
    """A unit test tried to serve on a socket or to start a process."""


class _Refusals:
    """The refused attempts of one test phase."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, what: str) -> NoReturn:
        self.attempts.append(what)
        raise ServerOrSubprocessInUnitTest(f"{what}: {RULE}")

    def refuser(self, what: str) -> Callable[..., NoReturn]:
        def refused(*args: Any, **kwargs: Any) -> NoReturn:
            self.refuse(what)

        return refused

    def async_refuser(self, what: str) -> Callable[..., Any]:
        async def refused(*args: Any, **kwargs: Any) -> NoReturn:
            self.refuse(what)

        return refused

    def bind_guard(self, real_bind: Bind) -> Bind:
        def bind(sock: socket.socket, address: Any) -> None:
            is_tcp = sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
            if not (is_tcp and isinstance(address, tuple) and address[1] == 0):
                self.refuse(f"socket.socket.bind({address!r})")
            real_bind(sock, address)

        return bind


# (owner, attribute, is a coroutine function); socket.socket.bind has its own guard
_REFUSED: list[tuple[object, str, bool]] = [
    (socket.socket, "listen", False),
    (asyncio.base_events.BaseEventLoop, "create_server", True),
    (asyncio.unix_events._UnixSelectorEventLoop, "create_unix_server", True),
    (asyncio, "start_server", True),
    (asyncio, "start_unix_server", True),
    (asyncio.streams, "start_server", True),
    (asyncio.streams, "start_unix_server", True),
    (subprocess.Popen, "__init__", False),
    (asyncio, "create_subprocess_exec", True),
    (asyncio, "create_subprocess_shell", True),
    (asyncio.subprocess, "create_subprocess_exec", True),
    (asyncio.subprocess, "create_subprocess_shell", True),
    (asyncio.base_events.BaseEventLoop, "subprocess_exec", True),
    (asyncio.base_events.BaseEventLoop, "subprocess_shell", True),
    (_posixsubprocess, "fork_exec", False),
    (subprocess, "_fork_exec", False),  # subprocess keeps its own reference to fork_exec
    (os, "fork", False),
    (os, "forkpty", False),
    (os, "posix_spawn", False),
    (os, "posix_spawnp", False),
    (os, "system", False),
]


def _name_of(owner: object) -> str:
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    return str(getattr(owner, "__name__", owner))


@contextmanager
def forbid_servers_and_subprocesses() -> Iterator[_Refusals]:
    """Refuses serving and spawning until the block ends; yields the attempts made meanwhile."""
    refusals = _Refusals()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "bind", refusals.bind_guard(socket.socket.bind))
        for owner, name, is_coroutine in _REFUSED:
            if hasattr(owner, name):
                label = f"{_name_of(owner)}.{name}"
                refused = refusals.async_refuser(label) if is_coroutine else refusals.refuser(label)
                patch.setattr(owner, name, refused)
        yield refusals


def _guarded_phase(item: pytest.Item) -> Generator[None, object, object]:
    refusals = _Refusals()
    try:
        with forbid_servers_and_subprocesses() as refusals:
            result = yield
    except (KeyboardInterrupt, ServerOrSubprocessInUnitTest):
        raise
    except BaseException as failure:  # pytest's skip and fail outcomes included
        if refusals.attempts:
            raise ServerOrSubprocessInUnitTest(_summary(item, refusals.attempts)) from failure
        raise
    if refusals.attempts:
        raise ServerOrSubprocessInUnitTest(_summary(item, refusals.attempts))
    return result


def _summary(item: pytest.Item, attempts: list[str]) -> str:
    return f"{item.nodeid} tried {', '.join(dict.fromkeys(attempts))}: {RULE}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded_phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded_phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded_phase(item))
