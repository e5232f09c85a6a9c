"""``llmserve --version``."""

from __future__ import annotations

from typer.testing import CliRunner

from llmserve import __version__
from llmserve.cli import app


def test_version_prints_the_version_and_exits_0() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"llmserve {__version__}"
