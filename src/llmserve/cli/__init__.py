"""The ``llmserve`` command: one module per command group, put together here.

Commands import their heavy dependencies (the app, torch, uvicorn, aiohttp) when they run, so
``llmserve --help`` and the light commands start fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from llmserve import __version__
from llmserve.cli.batch import batch_app
from llmserve.cli.chat import chat
from llmserve.cli.db import db_app
from llmserve.cli.keys import keys_app
from llmserve.cli.serve import serve
from llmserve.cli.worker import worker

app = typer.Typer(help="llmserve: any LLM as a production Web API.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"llmserve {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """llmserve: any LLM as a production Web API."""


app.command()(serve)
app.command()(chat)
app.command()(worker)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(batch_app, name="batch")


def main() -> None:
    app()
