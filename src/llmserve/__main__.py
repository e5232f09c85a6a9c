"""``python -m llmserve`` is the ``llmserve`` command."""

from llmserve.cli import main

main()
