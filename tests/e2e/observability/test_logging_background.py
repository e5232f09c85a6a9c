"""A server's log lines are written by a thread, off the event loop: none may be lost when the process
exits, and a forked worker writes its own lines once. Each case runs in a python subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import orjson
import pytest

pytestmark = pytest.mark.e2e


def test_lines_logged_just_before_exit_are_written() -> None:
    program = textwrap.dedent(
        """
        import logging
        from llmserve.observability.logging import configure_logging
        configure_logging("info", "json")
        for n in range(200):
            logging.getLogger("llmserve.exit").info("line %d", n)
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    messages = [orjson.loads(line)["message"] for line in done.stderr.splitlines()]
    assert messages == [f"line {n}" for n in range(200)]


def test_a_forked_child_writes_its_own_lines_once() -> None:
    program = textwrap.dedent(
        """
        import logging, os
        from llmserve.observability.logging import configure_logging
        configure_logging("info", "json")
        log = logging.getLogger("llmserve.fork")
        log.info("parent, queued at the fork")
        pid = os.fork()
        if pid == 0:
            log.info("child")
        else:
            os.waitpid(pid, 0)
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    messages = sorted(orjson.loads(line)["message"] for line in done.stderr.splitlines())
    assert messages == ["child", "parent, queued at the fork"]
