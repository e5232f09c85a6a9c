"""Node packages for the e2e tier, installed once per machine into a cache directory (never the
repository), and a runner for the tier's scripts in tests/e2e/node/. A machine without Node.js and
npm skips these tests; CI (``CI=true``) fails them, so a runner image that lost Node is noticed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).parent / "node"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmserve-test"


def node_packages(name: str, packages: Sequence[str]) -> Path:
    """The cache directory ``name`` with ``packages`` installed (npm specs such as ``ai@7``)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        reason = "Node.js and npm are needed for the Node client tests"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    cache = CACHE_ROOT / name
    wanted = [spec.rsplit("@", 1)[0] if spec.rfind("@") > 0 else spec for spec in packages]
    if not all((cache / "node_modules" / package / "package.json").exists() for package in wanted):
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "package.json").write_text(json.dumps({"name": f"llmserve-{name}", "private": True}))
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", *packages],
            cwd=cache,
            check=True,
            timeout=300,
        )
    return cache


def run_script(cache: Path, script: str, *args: str, timeout: float = 120) -> dict[str, Any]:
    """Runs tests/e2e/node/``script`` next to ``cache``'s node_modules (so its imports resolve) and
    returns the JSON object of its last output line."""
    copied = cache / script
    shutil.copyfile(SCRIPTS / script, copied)
    ran = subprocess.run(
        ["node", str(copied), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing; stderr:\n{ran.stderr}"
    seen: dict[str, Any] = json.loads(lines[-1])
    return seen
