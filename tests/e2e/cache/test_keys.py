"""Cache keys across processes: replicas share Redis, so a key must come out the same in each of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmserve.cache.keys import exact_key, semantic_scope
from llmserve.types import GenerationOptions
from tests.unit.cache.fakes import TOOL, chat

pytestmark = pytest.mark.e2e


def test_the_key_is_the_same_in_another_process() -> None:
    # Replicas share Redis: a key must not depend on hash randomisation or dict order in one process.
    code = (
        "from tests.unit.cache.fakes import TOOL_REORDERED, chat\n"
        "from llmserve.cache.keys import exact_key, semantic_scope\n"
        "from llmserve.types import GenerationOptions\n"
        "options = GenerationOptions(temperature=0.0, tools=(TOOL_REORDERED,))\n"
        "request = chat('hi', system='s', options=options)\n"
        "print(exact_key(request), semantic_scope(request))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=60
    )
    assert result.returncode == 0, result.stderr
    request = chat("hi", system="s", options=GenerationOptions(temperature=0.0, tools=(TOOL,)))
    assert result.stdout.split() == [exact_key(request), semantic_scope(request)]
