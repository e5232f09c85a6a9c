"""A gateway-only install (no `local` extra) has no torch: the package must still import and explain.

Each check runs in a fresh interpreter, where torch has never been imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.e2e


def run_without_torch(code: str) -> subprocess.CompletedProcess[str]:
    # A None entry in sys.modules makes `import torch` raise ImportError, as on a machine without it.
    prelude = "import sys\nfor name in ('torch', 'transformers'):\n    sys.modules[name] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_app_and_cli_import_without_torch() -> None:
    result = run_without_torch(
        """
        import llmserve.app, llmserve.cli, llmserve.services.models
        print("torch loaded:", sys.modules.get("torch") is not None)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "torch loaded: False" in result.stdout


def test_local_model_without_torch_names_the_missing_extra() -> None:
    result = run_without_torch(
        """
        from llmserve.config import load_settings
        from llmserve.services.models import UnsupportedProvider, check_buildable
        try:
            check_buildable(load_settings())
        except UnsupportedProvider as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'llmserve[local]'" in result.stdout
