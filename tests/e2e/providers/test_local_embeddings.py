"""An install without the ``embeddings`` extra names it when a local embeddings model is configured.

A fresh interpreter, because the import that fails must not have happened in this one already."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.e2e


def test_a_missing_extra_is_named_at_start() -> None:
    code = """
        import sys
        sys.modules["sentence_transformers"] = None  # as on an install without the extra
        from llmserve.config import ModelDeployment, load_settings
        from llmserve.services.models import UnsupportedProvider, check_buildable
        entry = ModelDeployment(name="minilm", model="all-MiniLM-L6-v2", task="embeddings")
        try:
            check_buildable(load_settings(models=[entry]))
        except UnsupportedProvider as exc:
            print(exc)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "models entry 'minilm'" in result.stdout
    assert "pip install 'llmserve[embeddings]'" in result.stdout
